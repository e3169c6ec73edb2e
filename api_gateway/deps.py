"""Dependencies handlers declare with ``Annotated`` aliases: settings, the OGC ↔ Prefect
adapter's services, the user.

The services (:data:`ProcessesDep`, :data:`JobsDep`, :data:`SchedulesDep`,
:data:`LogsDep`) are built per request on the one :class:`~ogc_prefect.PrefectApi` the
app opens in its lifespan (:data:`PrefectDep`).

Who the user is: in open mode (no ``OAPIP_OIDC_ISSUER``) the path's ``{user}``, or
``anonymous`` on the unprefixed tree. With an issuer, the bearer token's user: on
``/{user}/ogc-api`` it must be the path's user (403 otherwise); on ``/ogc-api`` it is the
token's user. Public pages (landing, conformance) take :data:`PublicContextDep` and need
no token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api_gateway.auth import OidcVerifier, bearer_token
from api_gateway.builtins import ensure_builtins
from core.exceptions import Forbidden, InvalidParameter
from core.naming import ANONYMOUS, USER_NAME
from core.settings import Settings
from ogc_prefect import Jobs, Logs, PrefectApi, Processes, Schedules

__all__ = [
    "ANONYMOUS",
    "ContextDep",
    "JobsDep",
    "LogsDep",
    "OgcContext",
    "PrefectDep",
    "ProcessesDep",
    "PublicContextDep",
    "SchedulesDep",
    "SettingsDep",
    "UserDep",
]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_prefect(request: Request) -> PrefectApi:
    """The shared connection to Prefect, opened by the app's lifespan."""
    return request.app.state.prefect


PrefectDep = Annotated[PrefectApi, Depends(get_prefect)]


def get_processes(prefect: PrefectDep) -> Processes:
    """Deployed processes (:mod:`ogc_prefect.processes`)."""
    return Processes(prefect)


ProcessesDep = Annotated[Processes, Depends(get_processes)]


def get_jobs(prefect: PrefectDep, processes: ProcessesDep) -> Jobs:
    """Jobs (:mod:`ogc_prefect.jobs`)."""
    return Jobs(prefect, processes)


JobsDep = Annotated[Jobs, Depends(get_jobs)]


def get_schedules(prefect: PrefectDep, processes: ProcessesDep) -> Schedules:
    """Reprocessing schedules (:mod:`ogc_prefect.schedules`)."""
    return Schedules(prefect, processes)


SchedulesDep = Annotated[Schedules, Depends(get_schedules)]


def get_logs(prefect: PrefectDep, jobs: JobsDep) -> Logs:
    """Job logs (:mod:`ogc_prefect.logs`)."""
    return Logs(prefect, jobs)


LogsDep = Annotated[Logs, Depends(get_logs)]


def _check_user_name(user: str) -> None:
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


def get_path_user(request: Request) -> str:
    """The user the path names: its ``{user}`` or, unprefixed, ``anonymous``."""
    user = request.path_params.get("user")
    if user is None:
        return ANONYMOUS
    _check_user_name(user)
    return user


async def get_user(request: Request) -> str:
    """The user a request acts for (see the module docstring); 401/403 when not allowed."""
    verifier: OidcVerifier | None = request.app.state.verifier
    if verifier is None:
        return get_path_user(request)
    token_user = await verifier.user(bearer_token(request.headers.get("authorization")))
    path_user = request.path_params.get("user")
    if path_user is not None and path_user != token_user:
        # Said without checking whether the path's user exists: nothing to learn here.
        raise Forbidden(f"this token is for user {token_user!r}, not for /{path_user}/ogc-api")
    try:
        _check_user_name(token_user)
    except InvalidParameter as exc:
        raise Forbidden(f"the token's user cannot use this server: {exc.detail}") from None
    return token_user


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
UserDep = Annotated[str, Depends(get_user)]
PathUserDep = Annotated[str, Depends(get_path_user)]


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


async def get_context(
    request: Request, user: UserDep, settings: SettingsDep, processes: ProcessesDep
) -> OgcContext:
    # Every user has the built-in processes (echo): deployed on their first request here.
    await ensure_builtins(request.app.state, processes, user)
    return OgcContext(request, user, settings)


def get_public_context(request: Request, user: PathUserDep, settings: SettingsDep) -> OgcContext:
    return OgcContext(request, user, settings)


ContextDep = Annotated[OgcContext, Depends(get_context)]
PublicContextDep = Annotated[OgcContext, Depends(get_public_context)]
