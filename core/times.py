"""RFC 3339 times as OGC documents write them (UTC, milliseconds, ``Z``) and read them."""

from __future__ import annotations

import datetime as dt

__all__ = ["format_time", "parse_time"]


def format_time(value: dt.datetime | None) -> str | None:
    """``2026-01-31T12:00:00.000Z`` for ``value`` (None stays None)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 instant; one without a zone is taken as UTC. ``ValueError`` otherwise."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
