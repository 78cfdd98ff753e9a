"""The delivery routes (every job's POST route and its aliases, `/api/inngest`'s POST),
answered ahead of FastAPI's router.

A delivery route reads its raw body and headers itself (a signature covers the bytes),
so FastAPI's own work for it (middleware that skips it, the router's walk over every
route, dependency solving, the per-request exit stacks) adds nothing it uses. In a burst
that work cost a tenth of a delivery's CPU in the web process. This plain ASGI
middleware sits outside the app's own middleware and the router: a POST to one of these
exact paths (without a proxy's root path) is handed to its endpoint directly; everything
else, other methods on those paths included (answered 405 by the router), goes on
through FastAPI. Errors still reach FastAPI's outermost layer, which answers 500, and
`/api/inngest`'s gate (bridge/inngest/gate.py) sits outside this one, so every request
the router would take to Inngest's endpoint passes it first.

So an app's middleware and exception handlers (its `add_routes` hook) see the app's own
routes, and a delivery only when its path is spelled otherwise (a final `%0A`, which the
router still takes to the same endpoint).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette._utils import get_route_path  # how the router itself reads the path
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    def __init__(self, app: ASGIApp, *, endpoints: Mapping[str, Endpoint]) -> None:
        """`endpoints`: the POST endpoint of each delivery path."""
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(get_route_path(scope))
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
