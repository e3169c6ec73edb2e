"""The few Prefect API writes on the engine's hot path, without the Prefect client's
retry waits.

On SQLite, a write transaction that meets another connection's commit is refused at
once (``SQLITE_BUSY_SNAPSHOT``); the server answers 503 and the same request, repeated,
goes through. Prefect's client waits ``2 ** attempt`` seconds before repeating (2 s the
first time), which made every other job on the embedded default two seconds slower to
create and to claim. These calls repeat after 25 ms, doubling, within a deadline.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.objects import FlowRun, State
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY
from prefect.states import Scheduled, to_state_create

from core.retry import Backoff, retry_async

__all__ = ["RETRY_CODES", "PrefectRest", "Refused"]

RETRY_CODES = frozenset({408, 429, 502, 503, 504})
"""HTTP statuses after which the same request is repeated."""


def _transient(exc: Exception) -> bool:
    """A refused write (503 from a locked SQLite, a proxy's 502...) or a lost connection."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRY_CODES
    return isinstance(exc, httpx.TransportError)


class Refused(Exception):
    """Prefect's orchestration did not accept a proposed state (another worker claimed
    the run, or it was cancelled); ``state`` is the run's state as the server has it."""

    def __init__(self, status: str, state: State | None) -> None:
        super().__init__(f"state change {status.lower()}")
        self.state = state


class PrefectRest:
    """The hot-path writes, over one ``httpx`` client with the Prefect client's credentials.

    Args:
        api_url: the Prefect API's URL (``.../api``).
        deadline_s: how long, in seconds, a write may be repeated before its last failure
            is raised.
    """

    def __init__(self, api_url: str, *, deadline_s: float = 30.0) -> None:
        headers = {}
        if auth := PREFECT_API_AUTH_STRING.value():
            headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
        elif key := PREFECT_API_KEY.value():
            headers["Authorization"] = f"Bearer {key}"
        self.http = httpx.AsyncClient(
            base_url=api_url.rstrip("/") + "/", headers=headers, timeout=30.0
        )
        self.deadline_s = deadline_s

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST ``body``; repeat on a retryable answer or a lost connection, after 25 ms
        doubling to 1 s, within ``deadline_s``; then the last failure is raised."""

        async def attempt() -> httpx.Response:
            response = await self.http.post(path, json=body)
            if response.status_code in RETRY_CODES:
                raise httpx.HTTPStatusError(
                    f"Prefect answered {response.status_code}",
                    request=response.request,
                    response=response,
                )
            response.raise_for_status()
            return response

        backoff = Backoff(
            first_s=0.025, factor=2.0, max_s=1.0, attempts=None, deadline_s=self.deadline_s
        )
        return await retry_async(attempt, backoff=backoff, retryable=_transient)

    async def create_flow_run_from_deployment(
        self, deployment_id: uuid.UUID, **fields: Any
    ) -> FlowRun:
        """What ``PrefectClient.create_flow_run_from_deployment`` sends: the run starts
        Scheduled, due now."""
        create = DeploymentFlowRunCreate(state=to_state_create(Scheduled()), **fields)
        response = await self.post(
            f"deployments/{deployment_id}/create_flow_run",
            create.model_dump(mode="json", exclude_unset=True),
        )
        return FlowRun.model_validate(response.json())

    async def propose_state(self, flow_run_id: uuid.UUID, state: State) -> State:
        """Propose ``state``; the accepted state, or :class:`Refused`."""
        response = await self.post(
            f"flow_runs/{flow_run_id}/set_state",
            {"state": to_state_create(state).model_dump(mode="json"), "force": False},
        )
        result = response.json()
        accepted = State.model_validate(result["state"]) if result.get("state") else None
        if result["status"] != "ACCEPT" or accepted is None:
            raise Refused(result["status"], accepted)
        return accepted
