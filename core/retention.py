"""When a finished job's results expire, and when its record is purged (pure).

The policy is site-wide (``OAPIP_JOB_RETENTION_DAYS``, ``OAPIP_JOB_PURGE_DAYS``) and
read at the time of asking, so changing it applies to jobs that already ended. The
gateway shows ``expires`` in a job's status; the housekeeping flow
(``flows.housekeeping``) acts on it.
"""

from __future__ import annotations

import datetime as dt

from core.settings import RetentionSettings

__all__ = ["expires_at", "purge_at"]

_DAY_S = 86400.0


def expires_at(finished: dt.datetime | None, policy: RetentionSettings) -> dt.datetime | None:
    """When the results of a job that ended at ``finished`` expire; None when they do
    not (no retention set, or the job has not ended)."""
    if finished is None or policy.retention_days is None:
        return None
    return finished + dt.timedelta(seconds=policy.retention_days * _DAY_S)


def purge_at(finished: dt.datetime | None, policy: RetentionSettings) -> dt.datetime | None:
    """When the record of a job that ended at ``finished`` is deleted (its results
    expired ``OAPIP_JOB_PURGE_DAYS`` before); None when records are kept."""
    expires = expires_at(finished, policy)
    if expires is None or policy.purge_days is None:
        return None
    return expires + dt.timedelta(seconds=policy.purge_days * _DAY_S)
