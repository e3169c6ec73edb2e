"""ogc_prefect.rest against a loopback HTTP server that answers as Prefect does."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prefect.states import Pending

from ogc_prefect.rest import PrefectRest, Refused

RUN = {
    "id": str(uuid.uuid4()),
    "name": "echo",
    "flow_id": str(uuid.uuid4()),
    "parameters": {"inputs": {}},
    "tags": ["oapip"],
}


class _Prefect:
    """Answers each POST with the next (status, body) of ``script``; records requests."""

    def __init__(self, script: list[tuple[int, dict]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[str, dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, body))
                status, answer = owner.script.pop(0) if owner.script else (500, {})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prefect(request: pytest.FixtureRequest):
    server = _Prefect(request.param)
    yield server
    server.close()


async def _with_rest(url: str, call, **kwargs):
    rest = PrefectRest(url, **kwargs)
    try:
        return await call(rest)
    finally:
        await rest.aclose()


@pytest.mark.parametrize(
    "prefect",
    [[(503, {"exception_message": "Service Unavailable"})] * 2 + [(201, RUN)]],
    indirect=True,
)
def test_a_create_refused_for_a_busy_database_is_repeated_until_it_goes_through(prefect):
    deployment = uuid.uuid4()
    run = asyncio.run(
        _with_rest(
            prefect.url,
            lambda rest: rest.create_flow_run_from_deployment(
                deployment, parameters={"inputs": {}}, tags=["oapip"], name="echo"
            ),
        )
    )
    assert str(run.id) == RUN["id"]
    assert [path for path, _ in prefect.requests] == [
        f"/api/deployments/{deployment}/create_flow_run"
    ] * 3
    body = prefect.requests[-1][1]
    assert body["state"]["type"] == "SCHEDULED"
    assert body["tags"] == ["oapip"] and body["name"] == "echo"


@pytest.mark.parametrize("prefect", [[(503, {})] * 100], indirect=True)
def test_a_server_that_stays_busy_fails_the_call_at_the_deadline(prefect):
    with pytest.raises(httpx.HTTPStatusError, match="503"):
        asyncio.run(
            _with_rest(
                prefect.url,
                lambda rest: rest.create_flow_run_from_deployment(uuid.uuid4()),
                deadline_s=0.3,
            )
        )
    assert 2 <= len(prefect.requests) < 100


@pytest.mark.parametrize("prefect", [[(404, {"detail": "Deployment not found"})]], indirect=True)
def test_a_missing_deployment_is_not_repeated(prefect):
    with pytest.raises(httpx.HTTPStatusError) as caught:
        asyncio.run(
            _with_rest(prefect.url, lambda rest: rest.create_flow_run_from_deployment(uuid.uuid4()))
        )
    assert caught.value.response.status_code == 404
    assert len(prefect.requests) == 1


CANCELLED = {"type": "CANCELLED", "name": "Cancelled", "message": "dismissed"}


@pytest.mark.parametrize(
    "prefect",
    [[(200, {"status": "ABORT", "state": CANCELLED, "details": {"reason": "cancelled"}})]],
    indirect=True,
)
def test_a_claim_the_server_does_not_accept_is_refused_with_the_runs_state(prefect):
    run_id = uuid.uuid4()
    with pytest.raises(Refused) as caught:
        asyncio.run(
            _with_rest(
                prefect.url, lambda rest: rest.propose_state(run_id, Pending(message="claim"))
            )
        )
    assert caught.value.state is not None and caught.value.state.is_cancelled()
    path, body = prefect.requests[0]
    assert path == f"/api/flow_runs/{run_id}/set_state"
    assert body["state"]["type"] == "PENDING" and body["state"]["message"] == "claim"
    assert body["force"] is False


@pytest.mark.parametrize(
    "prefect",
    [[(201, {"status": "ACCEPT", "state": {"type": "PENDING", "name": "Pending"}})]],
    indirect=True,
)
def test_an_accepted_claim_returns_the_pending_state(prefect):
    state = asyncio.run(
        _with_rest(prefect.url, lambda rest: rest.propose_state(uuid.uuid4(), Pending()))
    )
    assert state.is_pending()
