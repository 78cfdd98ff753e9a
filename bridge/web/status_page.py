"""GET /status (an HTML page for people) and GET /status.json (the same, for machines):
where the migration stands (bridge.ops.status_board).

Behind METRICS_TOKEN like /metrics (bridge.web.operator_auth): a browser logs in with
Basic auth, the token as password. Without the token neither route exists (404).
The board is collected in a thread, never on the event loop, and reused for
CACHE_SECONDS, so a page left open (it refreshes itself), or several, costs one set of
queries and QStash calls per CACHE_SECONDS at most. One collection at a time, and the
requests that come meanwhile hold no thread: they are answered the board before, or,
when there is none yet, wait on the event loop for the one being collected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from bridge.apps import App
from bridge.ops.qstash_holdings import LogCensus
from bridge.ops.status_board import Board, collect_board
from bridge.web.operator_auth import add_operator_route, operator_auth
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
    """The last board, collected again once older than `ttl`, in one thread at a time.

    Starlette's thread pool is shared with every other route (/healthz among them), so a
    request never waits in a thread: while a collection runs, the others are answered
    the previous board at once, or, before the first board, wait on an asyncio lock."""

    def __init__(
        self,
        collect: Callable[[], Board],
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collect, self._ttl, self._clock = collect, ttl, clock
        self._lock = asyncio.Lock()
        self._cached: tuple[float, Board] | None = None

    def _fresh(self) -> Board | None:
        cached = self._cached
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        return None

    async def get(self) -> Board:
        if (board := self._fresh()) is not None:
            return board
        if self._lock.locked() and self._cached is not None:
            return self._cached[1]  # being collected again: the one before meanwhile
        async with self._lock:
            if (board := self._fresh()) is not None:  # collected while this one waited
                return board
            started = self._clock()
            board = await run_in_threadpool(self._collect)
            self._cached = (started, board)
            return board


def add_status_routes(web: FastAPI, settings: Settings, app: App) -> None:
    auth = operator_auth(settings)
    if auth is None:
        return
    census = LogCensus()  # QStash's logs, read on across collections
    cache = BoardCache(lambda: collect_board(settings, app, census=census))

    async def status_page(request: Request) -> Response:
        return HTMLResponse(render_page(await cache.get()), headers=HEADERS)

    async def status_json(request: Request) -> Response:
        return JSONResponse((await cache.get()).as_json(), headers=HEADERS)

    add_operator_route(web, STATUS_PATH, auth, "the status page", status_page)
    add_operator_route(web, STATUS_JSON_PATH, auth, "the status page", status_json)
