"""GET /status (an HTML page for people) and GET /status.json (the same, for machines):
where the migration stands (bridge.ops.status_board).

Behind METRICS_TOKEN like /metrics (bridge.web.operator_auth): a browser logs in with
Basic auth, the token as password. Without the token neither route exists (404).
The board is collected in a thread, never on the event loop, and reused for
CACHE_SECONDS, so a page left open (it refreshes itself), or several, costs one set of
queries and QStash calls per CACHE_SECONDS at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from bridge.apps import App
from bridge.ops.status_board import Board, collect_board
from bridge.web.operator_auth import operator_auth
from bridge.web.status_html import render_page
from config import Settings

STATUS_PATH = "/status"
STATUS_JSON_PATH = "/status.json"
CACHE_SECONDS = 15.0
# The page loads nothing but itself: any script, frame or fetch is refused by the
# browser, whatever an escaped value might have smuggled in.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BoardCache:
    """The last board, collected again once older than `ttl`; one collection at a time
    (concurrent requests wait for it rather than start their own)."""

    def __init__(
        self,
        collect: Callable[[], Board],
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collect, self._ttl, self._clock = collect, ttl, clock
        self._lock = threading.Lock()
        self._cached: tuple[float, Board] | None = None

    def get(self) -> Board:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._collect())
            return self._cached[1]


def add_status_routes(web: FastAPI, settings: Settings, app: App) -> None:
    auth = operator_auth(settings)
    if auth is None:
        return
    cache = BoardCache(lambda: collect_board(settings, app))

    @web.get(STATUS_PATH, include_in_schema=False)
    async def status_page(request: Request) -> Response:
        if not auth.allows(request):
            return auth.refusal("the status page")
        board = await run_in_threadpool(cache.get)
        return HTMLResponse(render_page(board), headers=HEADERS)

    @web.get(STATUS_JSON_PATH, include_in_schema=False)
    async def status_json(request: Request) -> Response:
        if not auth.allows(request):
            return auth.refusal("the status page")
        board = await run_in_threadpool(cache.get)
        return JSONResponse(board.as_json(), headers=HEADERS)
