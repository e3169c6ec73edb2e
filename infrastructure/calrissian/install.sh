#!/usr/bin/env bash
# Install Calrissian into a virtualenv of its own (default: <checkout>/.calrissian-venv).
#
# Calrissian pins cwltool and the Kubernetes client to versions the engine does not use,
# so it never goes into the engine's environment. In a cluster it runs from its own image
# (the backend's `calrissian_image`); this virtualenv is for the tests that run the real
# `calrissian` against the emulated Kubernetes API (tests/blocks/test_calrissian_emulated.py).
#
#   infrastructure/calrissian/install.sh [VENV]
#
# Idempotent: a stamp file records the installed version.
set -euo pipefail

CALRISSIAN_VERSION=0.18.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.calrissian-venv}"
PYTHON="${PYTHON:-python3}"

if [[ -x "$VENV/bin/calrissian" && "$(cat "$VENV/.installed" 2>/dev/null)" == "$CALRISSIAN_VERSION" ]]; then
    exit 0
fi
exec 9>"$VENV.lock"
flock 9
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --no-compile --disable-pip-version-check \
    "calrissian==$CALRISSIAN_VERSION"
echo "$CALRISSIAN_VERSION" >"$VENV/.installed"
