"""The ASGI app: `/api/inngest`, one route per job and cron, `/healthz`."""

from __future__ import annotations

import logging

import inngest.fast_api
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from bridge.inngest_client import make_inngest_client, signature_check
from bridge.web.api_docs import create_documented_app, document_routes
from bridge.web.api_routes import add_api_routes
from bridge.web.health import check_broker, check_database
from bridge.web.inngest_functions import all_functions
from bridge.web.inngest_gate import InngestGate
from bridge.web.job_routes import add_job_routes
from config import Settings, get_settings

INNGEST_PATH = "/api/inngest"


def serve_inngest(app: FastAPI, settings: Settings) -> None:
    client = make_inngest_client(settings)
    app.add_middleware(
        InngestGate,
        path=INNGEST_PATH,
        max_body_bytes=settings.inngest_max_body_bytes,
        signature_check=None if settings.inngest_is_dev else signature_check(settings),
    )
    inngest.fast_api.serve(
        app,
        client,
        all_functions(client),
        # Cloud mode registers only on a signed PUT (Inngest's own sync, `jobbridge sync`),
        # at INNGEST_SERVE_ORIGIN, which Settings require there: never at a request's Host.
        enable_unauthed_sync=settings.inngest_is_dev,
        serve_origin=settings.inngest_serve_origin,
        serve_path=INNGEST_PATH,
    )
    # Inngest's own protocol, not an API for generated clients: kept out of the schema.
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == INNGEST_PATH:
            route.include_in_schema = False


def create_app(settings: Settings | None = None) -> FastAPI:
    import tasks  # registers every job and cron

    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO)
    app = create_documented_app(settings)

    if settings.inngest_serves:
        # Without a signing key (or a dev server) /api/inngest is not served at all: the
        # SDK's dev mode accepts unsigned calls, which must never be the default.
        serve_inngest(app, settings)
    add_job_routes(app, settings)
    add_api_routes(app, settings)
    if settings.api_docs != "off":
        document_routes(
            app,
            jobs=[(spec.route, spec.payload) for spec in tasks.JOBS.values()],
            crons=[cron.route for cron in tasks.CRONS.values()],
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        database = await run_in_threadpool(check_database)
        broker = await run_in_threadpool(check_broker, settings)
        ok = database["ok"] and broker["ok"]
        body = {"ok": ok, "database": database, "broker": broker, "jobs": sorted(tasks.JOBS)}
        return JSONResponse(body, 200 if ok else 503)

    return app
