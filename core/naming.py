"""Every naming convention that ties the engine's parts together, in one place.

The gateway names Prefect objects, the flow and the worker read those names back, and
the stack creates the objects they all refer to; each side takes the names from here.

* a deployed process is a deployment ``<process id>@<user>`` of the flow
  :data:`FLOW_NAME`, tagged :data:`TAG`, ``user:<user>`` and ``process:<id>``;
* its package is a block document of type :data:`PACKAGE_BLOCK_TYPE` named by
  :func:`package_block_name`;
* a job is a flow run of that deployment with the same tags and :func:`job_tag`: its
  jobID (a UUID the gateway makes) is also the run's idempotency key; a run without that
  tag (one a schedule or the Prefect UI started) is the job whose id is the run's id;
  :func:`response_tag` keeps how its execute request asked for the results (a run
  without it reads as the results document: :func:`response_of`);
* a process deployed with its own ``jobRetentionDays`` has the tags :data:`OWN_RETENTION_TAG`
  and :func:`retention_tag` on its deployment; Prefect copies a deployment's tags onto
  every run it creates from it (the drainer's, a schedule's, the Prefect UI's), so each
  job keeps the retention its process had when its run was created (:func:`retention_of`);
* a fast worker claims a run by proposing Pending with the message :func:`claim_message`;
* a job's results live below :func:`results_key` ``(prefix, job_id)``; in the local result
  store, the gateway serves them at :func:`result_file_url` (the job's URL, ``/results/``,
  the rest of the key).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = [
    "ANONYMOUS",
    "ENTRYPOINT",
    "EXPIRED_TAG",
    "FAST_POOL_TYPE",
    "FLOW_NAME",
    "HOUSEKEEPING_FLOW",
    "OWN_RETENTION_TAG",
    "PACKAGE_BLOCK_TYPE",
    "PROCESS_ID",
    "RESULT_STORAGE_BLOCK",
    "TAG",
    "TOOL_LINE",
    "USER_NAME",
    "WORKER_ALIVE_FILE",
    "claim_message",
    "claimant",
    "deployment_name",
    "jobs_path",
    "job_id_of",
    "job_tag",
    "job_tags",
    "package_block_name",
    "process_of",
    "response_of",
    "response_tag",
    "result_file_url",
    "results_key",
    "retention_of",
    "retention_tag",
    "running_limit",
    "user_of",
    "user_tag",
]

FLOW_NAME = "ogc-execute"
"""The one generic flow every deployed process runs."""
ENTRYPOINT = "flows.execution:execute_process"
"""Where workers import that flow from."""
TAG = "oapip"
"""Tag on every deployment and flow run the engine makes (its other runs are not jobs)."""
PACKAGE_BLOCK_TYPE = "ogc-application-package"
"""Block type slug of the documents that hold deployed packages."""
RESULT_STORAGE_BLOCK = "local-file-system/oapip-results"
"""Prefect's result storage of the flow (its returned results documents)."""
FAST_POOL_TYPE = "oapip-fast"
"""Work-pool type of the engine's own worker."""
WORKER_ALIVE_FILE = "worker.alive"
"""File in ``OAPIP_HOME`` the fast worker touches every 30 s (its pod's liveness probe)."""
EXPIRED_TAG = "results-expired"
"""Tag housekeeping puts on a job whose results the retention policy removed."""
OWN_RETENTION_TAG = "own-retention"
"""Tag of the deployments (and so the jobs) of processes with their own retention: the one
tag housekeeping filters them by (a tag's value cannot be filtered on)."""
HOUSEKEEPING_FLOW = "oapip-housekeeping"
"""The flow that expires and purges old jobs (its deployment runs on a schedule)."""
TOOL_LINE = "tool: "
"""How a line of a tool's own output starts in a job's logs (users see it as it is)."""

ANONYMOUS = "anonymous"
"""The user of the unprefixed ``/ogc-api`` tree."""

PROCESS_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
"""What a process id may be: it is part of a deployment name and of URLs."""
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
"""What a user name may be: it is part of tags, deployment names and URLs."""

_CLAIM = re.compile(r"^claimed by oapip-fast (?P<host>\S+):(?P<pid>\d+)$")


#: Processes every user has from the start (``api_gateway/builtins.py``); they count
#: against no user's maximum of deployed processes.
BUILTIN_PROCESS_IDS = frozenset({"echo"})


def deployment_name(user: str, process_id: str) -> str:
    """Prefect deployment name of ``user``'s process (``@`` cannot occur in either id)."""
    return f"{process_id}@{user}"


def user_tag(user: str) -> str:
    """The tag that marks ``user``'s deployments and flow runs."""
    return f"user:{user}"


def running_limit(user: str) -> str:
    """Name of the Prefect global concurrency limit on ``user``'s running jobs (the
    same text as the user's tag, so the Prefect UI reads the same name everywhere)."""
    return user_tag(user)


def job_tags(user: str, process_id: str, *, retention_s: float | None = None) -> list[str]:
    """Tags of ``user``'s deployment of ``process_id`` and of every job it runs; with
    ``retention_s``, the process's own retention (seconds) too (:func:`retention_tag`)."""
    tags = [TAG, user_tag(user), f"process:{process_id}"]
    if retention_s is None:
        return tags
    return [*tags, OWN_RETENTION_TAG, retention_tag(retention_s)]


def job_tag(job_id: str) -> str:
    """The tag that shows a job's id on its flow run (in the Prefect UI too)."""
    return f"job:{job_id}"


def job_id_of(tags: Iterable[str], run_id: object) -> str:
    """The jobID of the flow run with ``tags`` and id ``run_id``: its :func:`job_tag`,
    else (a run a schedule or the Prefect UI started) the run's own id."""
    return _tag_value(tags, "job") or str(run_id)


def _tag_value(tags: Iterable[str], key: str) -> str | None:
    return next((t.split(":", 1)[1] for t in tags if t.startswith(f"{key}:")), None)


def user_of(tags: Iterable[str]) -> str | None:
    """The user named by a flow run's or deployment's tags."""
    return _tag_value(tags, "user")


def process_of(tags: Iterable[str]) -> str | None:
    """The process id named by a flow run's or deployment's tags."""
    return _tag_value(tags, "process")


def response_tag(response: str) -> str:
    """The tag that keeps the ``response`` (``raw`` or ``document``) a job's execute
    request asked for its results; every job the OGC API or WPS creates has one."""
    return f"response:{response}"


def response_of(tags: Iterable[str]) -> str:
    """How the results of the flow run with ``tags`` are answered: ``raw`` when its
    :func:`response_tag` says so, else ``document``.

    ``document`` without a tag: runs a reprocessing schedule or the Prefect UI started
    (no execute request named a form), and runs made before every job was tagged, when
    ``document`` was the gateway's default and only ``raw`` was tagged.
    """
    return "raw" if _tag_value(tags, "response") == "raw" else "document"


def retention_tag(seconds: float) -> str:
    """The tag that keeps how long a process's jobs keep their results, in seconds (to
    the millisecond): ``retention:2592000s`` for 30 days."""
    return f"retention:{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def retention_of(tags: Iterable[str]) -> float | None:
    """Seconds the flow run or deployment with ``tags`` keeps results, from its
    :func:`retention_tag` (the shortest, should it have several); None without one."""
    found = []
    for tag in tags:
        if tag.startswith("retention:") and tag.endswith("s"):
            with contextlib.suppress(ValueError):
                found.append(float(tag[len("retention:") : -1]))
    return min((s for s in found if math.isfinite(s) and s >= 0), default=None)


def package_block_name(owner: str, process_id: str) -> str:
    """Block document name for ``owner``'s process ``process_id``.

    Block names allow lowercase letters, digits and dashes only; a digest of the exact
    pair keeps names of ids that differ only in case or punctuation apart.
    """
    digest = hashlib.sha256(f"{owner}\0{process_id}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9]+", "-", f"{owner}-{process_id}".lower()).strip("-")[:40]
    return f"{readable}-{digest}"


def claim_message(host: str, pid: int) -> str:
    """The Pending-state message a fast worker claims a run with."""
    return f"claimed by oapip-fast {host}:{pid}"


def claimant(message: str | None) -> tuple[str, int] | None:
    """The ``(host, pid)`` of the worker a :func:`claim_message` names, else None."""
    match = _CLAIM.match(message or "")
    return (match["host"], int(match["pid"])) if match else None


def results_key(prefix: str, job_id: str, *parts: str) -> str:
    """Key of a job's result object: ``<prefix>/<jobID>/<parts...>``."""
    return "/".join([prefix.strip("/"), job_id, *(p.strip("/") for p in parts if p)])


def jobs_path(user: str | None) -> str:
    """Path of ``user``'s job list below the gateway's root: ``/<user>/ogc-api/jobs``, or
    ``/ogc-api/jobs`` for the unprefixed tree's :data:`ANONYMOUS`."""
    return "/ogc-api/jobs" if user in (None, ANONYMOUS) else f"/{user}/ogc-api/jobs"


def result_file_url(jobs_url: str, job_id: str, relative_key: str) -> str:
    """Where the gateway serves the object at ``relative_key`` (below the job's
    :func:`results_key`: ``<output id>/<file>``) of a job's results in the local store:
    ``<jobs_url>/<job id>/results/<output id>/<file>``."""
    return f"{jobs_url.rstrip('/')}/{job_id}/results/{quote(relative_key.strip('/'))}"
