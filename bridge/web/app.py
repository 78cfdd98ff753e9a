"""The ASGI app: `/api/inngest`, one route per job and cron, `/healthz`."""

from __future__ import annotations

import logging

import inngest.fast_api
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.inngest_client import make_inngest_client
from bridge.web import responses
from bridge.web.api_routes import add_api_routes
from bridge.web.auth import inngest_signature_too_old
from bridge.web.health import check_broker, check_database
from bridge.web.inngest_functions import all_functions
from bridge.web.job_routes import add_job_routes
from config import Settings, get_settings

INNGEST_PATH = "/api/inngest"


class RefuseStaleInngestSignatures:
    """Plain ASGI middleware: the SDK checks the signature but not its age.

    Not `@app.middleware("http")`: that wraps every request in a costly call chain,
    while only POSTs to /api/inngest need this look at one header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == INNGEST_PATH and scope["method"] == "POST":
            header = Headers(scope=scope).get("x-inngest-signature")
            if inngest_signature_too_old(header):
                refusal = responses.error(
                    401, "X-Inngest-Signature timestamp is over 5 minutes old"
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve_inngest(app: FastAPI, settings: Settings) -> None:
    if not settings.inngest_is_dev:
        app.add_middleware(RefuseStaleInngestSignatures)
    client = make_inngest_client(settings)
    inngest.fast_api.serve(
        app,
        client,
        all_functions(client),
        serve_origin=settings.inngest_serve_origin,
        serve_path=INNGEST_PATH,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    import tasks  # registers every job and cron

    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO)
    app = FastAPI(title="jobbridge", version="0.1.0")

    if settings.inngest_serves:
        # Without a signing key (or a dev server) /api/inngest is not served at all: the
        # SDK's dev mode accepts unsigned calls, which must never be the default.
        serve_inngest(app, settings)
    add_job_routes(app, settings)
    add_api_routes(app, settings)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        database = await run_in_threadpool(check_database)
        broker = await run_in_threadpool(check_broker, settings)
        ok = database["ok"] and broker["ok"]
        body = {"ok": ok, "database": database, "broker": broker, "jobs": sorted(tasks.JOBS)}
        return JSONResponse(body, 200 if ok else 503)

    return app
