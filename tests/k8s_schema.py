"""Strict validation of Kubernetes objects against the 1.32 schema (``kubernetes-validate``).

Strict mode rejects unknown fields, which is what catches a field put at the wrong level
(docs/architecture.md §6: prefect-kubernetes' default template puts ``completions`` in the
pod spec).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.32.0"


def assert_valid(manifests: Iterable[dict[str, Any]]) -> int:
    """Validate every manifest strictly; fail with every problem found. Returns the count."""
    problems, count = [], 0
    for manifest in manifests:
        count += 1
        name = f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{name}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)
    return count
