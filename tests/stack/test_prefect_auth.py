"""The Prefect API of the stacks the engine starts needs credentials (issue 14, item 2)."""

from __future__ import annotations

import stat

import requests

from stack.prefect_auth import AUTH_FILE
from tests.conftest import Engine


def test_the_prefect_api_answers_401_without_credentials(engine: Engine):
    url = f"{engine.prefect_api_url}/flow_runs/filter"
    assert requests.post(url, json={}, timeout=30).status_code == 401
    assert requests.post(url, json={}, auth=("oapip", "guess"), timeout=30).status_code == 401
    assert requests.post(url, json={}, auth=engine.prefect_auth, timeout=30).status_code == 200
    # Probes stay open: the stack and Kubernetes poll them.
    assert requests.get(f"{engine.prefect_api_url}/health", timeout=30).status_code == 200


def test_the_credentials_are_readable_by_the_engines_user_alone(engine: Engine):
    mode = stat.S_IMODE((engine.home / AUTH_FILE).stat().st_mode)
    assert mode == 0o600, oct(mode)
    # Tools never get them in their environment (cwltool passes HOME, TMPDIR, PATH).
    for line in engine.log_lines("worker"):
        assert engine.prefect_auth[1] not in line
