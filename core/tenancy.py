"""The engine's two modes: single-user (the embedded default) and multi-tenant (OIDC on).

Single-user: bound to loopback, every caller trusted; tools still run as an unprivileged
user (``OAPIP_SANDBOX=off``). Multi-tenant: every registered user may deploy a package,
and a package is code: tools must run in containers (``OAPIP_SANDBOX=containers``), so
the gateway, the worker and ``oapip up`` refuse to start otherwise (README, Security).
"""

from __future__ import annotations

from core.settings import Settings

__all__ = ["check_mode", "mode_problem"]


def mode_problem(settings: Settings) -> str | None:
    """Why ``settings`` may not start an engine process, or ``None``."""
    if settings.oidc.issuer and settings.execution.sandbox == "off":
        return (
            "multi-tenant mode (OAPIP_OIDC_ISSUER is set) runs any user's packages, and "
            "OAPIP_SANDBOX=off runs their tools on this host: set OAPIP_SANDBOX=containers "
            "(with OAPIP_CONTAINER_ENGINE, and OAPIP_DEFAULT_IMAGE for tools without a "
            "DockerRequirement)"
        )
    return None


def check_mode(settings: Settings) -> None:
    """Exit the process with the reason when ``settings`` may not start it."""
    problem = mode_problem(settings)
    if problem:
        raise SystemExit(f"error: {problem}")
