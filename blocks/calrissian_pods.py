"""What the Kubernetes objects of a Calrissian job say, read off the client's models
without calling the API: whether the Job has ended, whether a pod is stuck for good, and
what a failed call's error means.
"""

from __future__ import annotations

import json
import time
from typing import Any

from blocks.backend import RunOutcome
from core.exceptions import BackendError

__all__ = ["PodChecks", "api_reason", "is_calrissian_pod", "job_outcome", "refused_by_rbac"]

# Waiting reasons that never resolve by themselves: the job fails with the reason.
_STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"}
)


def job_outcome(status: Any) -> RunOutcome | None:
    """The Calrissian Job's end from its ``V1JobStatus``, or ``None`` while it runs."""
    for condition in (status.conditions if status else None) or []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return RunOutcome(True)
        if condition.type == "Failed":
            return RunOutcome(
                False, f"Calrissian job failed: {condition.reason}: {condition.message or ''}"
            )
    if status and status.succeeded:
        return RunOutcome(True)
    if status and status.failed:
        return RunOutcome(False, "the Calrissian job failed")
    return None


def is_calrissian_pod(pod: Any) -> bool:
    """Whether ``pod`` is the Calrissian Job's own pod (not a tool's)."""
    labels = pod.metadata.labels or {}
    return labels.get("job-name") == "calrissian"


class PodChecks:
    """Fails a job whose pod cannot pull its image, or stays unschedulable too long.

    Args:
        unschedulable_timeout_s: how long a pod may stay unschedulable, seconds.
    """

    def __init__(self, unschedulable_timeout_s: float) -> None:
        self.unschedulable_timeout_s = unschedulable_timeout_s
        self._unschedulable_since: dict[str, float] = {}

    def check(self, pod: Any) -> None:
        """Raise ``BackendError`` naming the cause if ``pod`` (a ``V1Pod``) is stuck."""
        name = pod.metadata.name
        status = pod.status
        if status is None:
            return
        for container in [
            *(status.init_container_statuses or []),
            *(status.container_statuses or []),
        ]:
            waiting = container.state.waiting if container.state else None
            if waiting is not None and waiting.reason in _STUCK_REASONS:
                raise BackendError(
                    f"pod {name}: {waiting.reason} for image {container.image}: "
                    f"{waiting.message or ''}".rstrip(": ")
                )
        for condition in status.conditions or []:
            if (
                condition.type == "PodScheduled"
                and condition.status == "False"
                and (condition.reason == "Unschedulable")
            ):
                since = self._unschedulable_since.setdefault(name, time.monotonic())
                if time.monotonic() - since >= self.unschedulable_timeout_s:
                    raise BackendError(f"pod {name} is unschedulable: {condition.message or ''}")
                return
        self._unschedulable_since.pop(name, None)


def api_reason(exc: Exception) -> str:
    """What the API server said about a failed call: its status and message."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if body:
        try:
            return f"HTTP {status}: {json.loads(body).get('message', body)}"
        except (ValueError, AttributeError):
            return f"HTTP {status}: {body}"
    return str(exc)


def refused_by_rbac(exc: Exception) -> bool:
    """Whether a failed call was refused by RBAC (403), not by Pod Security admission."""
    return getattr(exc, "status", None) == 403 and "PodSecurity" not in str(
        getattr(exc, "body", "")
    )
