"""When a finished job's results expire, and when its record is purged (pure).

A job keeps its results for its own retention when it has one (its process's
``jobRetentionDays``, carried on its flow run as a tag: ``core.naming.retention_of``),
else for the site's ``OAPIP_JOB_RETENTION_DAYS``; the site's, when set, also bounds the
job's own (lowering it shortens every retention). The site's policy is read at the time
of asking, so changing it applies to jobs that already ended; a job's own retention is
the one its process had when the job's run was created. Records are purged
``OAPIP_JOB_PURGE_DAYS`` (site-wide) after the results expired. The gateway shows
``expires`` in a job's status and answers 410 past it; the housekeeping flow
(``flows.housekeeping``) removes what is due.
"""

from __future__ import annotations

import datetime as dt

from core.settings import RetentionSettings

__all__ = ["DAY_S", "expires_at", "purge_at", "retention_s"]

DAY_S = 86400.0
"""Seconds in a day (retention settings are in days, retention tags in seconds)."""


def retention_s(policy: RetentionSettings, own_s: float | None = None) -> float | None:
    """Seconds a job keeps its results: its own retention ``own_s`` (seconds), at most
    the site's; the site's when it has none; None when neither is set (kept)."""
    site = None if policy.retention_days is None else policy.retention_days * DAY_S
    if own_s is None:
        return site
    return own_s if site is None else min(own_s, site)


def expires_at(
    finished: dt.datetime | None, policy: RetentionSettings, own_s: float | None = None
) -> dt.datetime | None:
    """When the results of a job that ended at ``finished`` expire (its own retention
    ``own_s``, seconds, else the site's: :func:`retention_s`); None when they do not (no
    retention, or the job has not ended)."""
    keep = retention_s(policy, own_s)
    if finished is None or keep is None:
        return None
    return finished + dt.timedelta(seconds=keep)


def purge_at(
    finished: dt.datetime | None, policy: RetentionSettings, own_s: float | None = None
) -> dt.datetime | None:
    """When the record of a job that ended at ``finished`` is deleted (its results
    expired ``OAPIP_JOB_PURGE_DAYS`` before); None when records are kept."""
    expires = expires_at(finished, policy, own_s)
    if expires is None or policy.purge_days is None:
        return None
    return expires + dt.timedelta(seconds=policy.purge_days * DAY_S)
