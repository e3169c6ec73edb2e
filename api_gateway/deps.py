"""Dependencies handlers declare with ``Annotated`` aliases: settings, bridge, user."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from api_gateway.prefect_bridge import PrefectBridge
from engine.exceptions import InvalidParameter
from engine.settings import Settings

__all__ = ["BridgeDep", "ContextDep", "OgcContext", "SettingsDep", "UserDep", "ANONYMOUS"]

ANONYMOUS = "anonymous"
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_bridge(request: Request) -> PrefectBridge:
    return request.app.state.bridge


def get_user(request: Request) -> str:
    """The user a request acts for: the path's ``{user}`` or, unprefixed, ``anonymous``."""
    user = request.path_params.get("user")
    if user is None:
        return ANONYMOUS
    if user == ANONYMOUS:
        # The unprefixed tree's owner: reachable as a prefix, it would share its processes.
        raise InvalidParameter(
            f"user name {ANONYMOUS!r} is reserved for the unprefixed /ogc-api tree"
        )
    if not USER_NAME.match(user):
        raise InvalidParameter(
            f"user name {user!r} is not valid: use letters, digits, '_', '-' and '.', "
            "at most 63 characters"
        )
    return user


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
BridgeDep = Annotated[PrefectBridge, Depends(get_bridge)]
UserDep = Annotated[str, Depends(get_user)]


class OgcContext:
    """Where a request sits: its user and the base URL of its OGC API tree."""

    def __init__(self, request: Request, user: str, settings: Settings) -> None:
        self.request = request
        self.user = user
        root = (settings.public_url or str(request.base_url)).rstrip("/")
        prefix = f"/{user}/ogc-api" if "user" in request.path_params else "/ogc-api"
        self.base = root + prefix
        self.root = root
        self.prefect_ui = settings.ui_url

    def wants_html(self) -> bool:
        f = self.request.query_params.get("f")
        if f:
            return f.lower() == "html"
        accept = self.request.headers.get("accept", "")
        return "text/html" in accept and accept.find("text/html") < (
            accept.find("application/json") if "application/json" in accept else 10**6
        )


def get_context(request: Request, user: UserDep, settings: SettingsDep) -> OgcContext:
    return OgcContext(request, user, settings)


ContextDep = Annotated[OgcContext, Depends(get_context)]
