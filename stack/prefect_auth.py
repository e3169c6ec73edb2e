"""The Prefect API's credentials on every stack the engine starts.

Prefect's server refuses every API call without ``Authorization: Basic <auth string>``
when ``PREFECT_SERVER_API_AUTH_STRING`` is set (health and readiness probes excepted).
The string is generated once into ``OAPIP_HOME/prefect-auth`` (mode 0600, readable by
the engine's user alone; tools run as another user, :mod:`cwlpkg.sandbox`): the server
gets it as ``PREFECT_SERVER_API_AUTH_STRING``, the gateway and the worker as
``PREFECT_API_AUTH_STRING``. An operator opens the Prefect UI with it (the UI asks).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["AUTH_FILE", "auth_string", "basic_auth"]

AUTH_FILE = "prefect-auth"
_USER = "oapip"


def auth_string(home: Path) -> str:
    """The ``user:password`` string of ``home``'s stack, created on first use (0600)."""
    path = home / AUTH_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        value = f"{_USER}:{secrets.token_urlsafe(32)}"
        # O_EXCL: two processes starting at once keep whichever string was written first.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as out:
            out.write(value)
        return value
    return path.read_text().strip()


def basic_auth(home: Path) -> tuple[str, str]:
    """``(user, password)`` for HTTP clients that speak basic auth (``requests``' ``auth=``)."""
    user, _, password = auth_string(home).partition(":")
    return user, password
