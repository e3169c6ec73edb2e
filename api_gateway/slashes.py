"""Paths answer with or without a trailing slash.

``POST …/processes/`` (as EOEPCA's tutorials write it, with plain curl) must deploy, not
answer Starlette's empty ``307`` redirect, which curl does not follow with the body. A
path with a trailing slash that no route serves as it is is served as the path without
it; the landing pages (``/ogc-api/``) and Swagger UI keep their own routes.
"""

from __future__ import annotations

from starlette.routing import Match

__all__ = ["TrailingSlashes"]


class TrailingSlashes:
    """ASGI middleware: strip a trailing slash no route matches (see the module)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            router = scope["app"].router if "app" in scope else None
            if router is not None and not any(
                route.matches(scope)[0] == Match.FULL for route in router.routes
            ):
                stripped = path.rstrip("/") or "/"
                scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        return await self.app(scope, receive, send)
