"""GET /status (an HTML page for people) and GET /status.json (the same, for machines):
where the migration stands (bridge.ops.status_board).

Behind METRICS_TOKEN like /metrics (bridge.web.operator_auth): a browser logs in with
Basic auth, the token as password. Without the token neither route exists (404).
The board is collected in a thread, never on the event loop, and reused for
CACHE_SECONDS (bridge.web.answer_cache), so a page left open (it refreshes itself), or
several, costs one set of queries and QStash calls per CACHE_SECONDS at most.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from bridge.apps import App
from bridge.ops.qstash_holdings import LogCensus
from bridge.ops.status_board import collect_board
from bridge.web.answer_cache import AnswerCache
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


def add_status_routes(web: FastAPI, settings: Settings, app: App) -> None:
    auth = operator_auth(settings)
    if auth is None:
        return
    census = LogCensus()  # QStash's logs, read on across collections
    cache = AnswerCache(lambda: collect_board(settings, app, census=census), CACHE_SECONDS)

    async def status_page(request: Request) -> Response:
        return HTMLResponse(render_page(await cache.get()), headers=HEADERS)

    async def status_json(request: Request) -> Response:
        return JSONResponse((await cache.get()).as_json(), headers=HEADERS)

    add_operator_route(web, STATUS_PATH, auth, "the status page", status_page)
    add_operator_route(web, STATUS_JSON_PATH, auth, "the status page", status_json)
