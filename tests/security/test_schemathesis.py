"""Property-based run of Schemathesis against the server's own ``/api``.

Every operation gets a bounded, seeded and derandomized set of generated requests
(``MAX_EXAMPLES`` each, so the run takes a couple of minutes at most and is the same in
every run); no response may be a 5xx or contradict the declared schema (its status
code, content type and body).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Engine

MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(engine: Engine):
    return schemathesis.openapi.from_url(f"{engine.url}/api")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_as_declared(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=60,
    )
