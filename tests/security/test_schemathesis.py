"""Property-based run of Schemathesis against the server's own ``/api``.

Every operation gets a bounded, derandomized set of generated requests (``MAX_EXAMPLES``
each, the same in every run, a few minutes at most); no response may be a 5xx or
contradict the declared schema (status code, content type, body). Schemathesis's pytest
plugin does not load under pytest 9, so each operation is one parametrized test that
drives Hypothesis itself.
"""

from __future__ import annotations

import functools

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Engine

MAX_EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@functools.cache
def _schema(url: str):
    return schemathesis.openapi.from_url(f"{url}/api")


def _operation_labels() -> list[str]:
    """``METHOD /path`` of every operation /api declares (read from the app, not a server)."""
    from api_gateway.app import create_app
    from api_gateway.openapi import openapi_30

    document = openapi_30(create_app())
    return [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "delete", "patch")
    ]


@pytest.mark.parametrize("label", _operation_labels())
def test_operation_answers_as_declared(engine: Engine, label: str):
    operations = {op.label: op for op in (r.ok() for r in _schema(engine.url).get_all_operations())}
    operation = operations[label]
    session = requests.Session()

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        case.call_and_validate(session=session, checks=CHECKS, timeout=60)

    check()
