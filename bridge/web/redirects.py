"""Starlette's trailing-slash redirect (`/healthz/` -> `/healthz`), by path alone.

Starlette builds that redirect's Location from the request's Host header, which the
client chose: a forged Host would send the client, or a cache in front that keeps the
answer, to another site. Here the router's own redirect is turned off and done instead,
with the same rule, when no route matched: its Location is the path (and query), which
every client resolves against the URL it asked for. Only requests no route serves pay
for it.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette._utils import get_route_path  # how the router itself reads the path
from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.routing import Match
from starlette.types import Receive, Scope, Send


def redirect_slashes_by_path(web: FastAPI) -> None:
    router = web.router
    router.redirect_slashes = False
    not_found = router.default

    async def slash_redirect_or_not_found(scope: Scope, receive: Receive, send: Send) -> None:
        route_path = get_route_path(scope)
        if scope["type"] == "http" and route_path != "/":
            path = scope["path"]
            other = {**scope, "path": path.rstrip("/") if route_path.endswith("/") else path + "/"}
            if any(route.matches(other)[0] is not Match.NONE for route in router.routes):
                url = URL(scope=other)
                # One leading slash: "//host/..." would name another site.
                location = "/" + url.path.lstrip("/") + (f"?{url.query}" if url.query else "")
                await RedirectResponse(location)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = slash_redirect_or_not_found
