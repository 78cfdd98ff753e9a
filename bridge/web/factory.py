"""The ASGI app: `/api/inngest`, one route per job and cron, the app's routes, `/healthz`,
and `/metrics`, `/status` and `/status.json` (with METRICS_TOKEN)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bridge.apps import App, load_app
from bridge.celery.config import make_embedded_broker_folders
from bridge.inngest.serve import add_inngest_gate, serve_inngest
from bridge.logs import configure_logging
from bridge.metrics_web import add_metrics_route
from bridge.ops.probes import Check, check_broker, check_database, check_redis_store
from bridge.registry import INNGEST_PATH
from bridge.store import loop_reads, redis_store
from bridge.web import responses
from bridge.web.answer_cache import AnswerCache
from bridge.web.api_docs import create_documented_app, document_routes
from bridge.web.direct_routes import DirectRoutes, Endpoint
from bridge.web.job_routes import add_job_routes
from bridge.web.redirects import redirect_slashes_by_path
from bridge.web.status_page import add_status_routes
from config import Settings, get_settings

log = logging.getLogger("jobbridge.health")
HEALTH_TIMEOUT_SECONDS = 2.0
# How long one round of /healthz's probes answers for.
HEALTH_CACHE_SECONDS = 1.0


def create_app(settings: Settings | None = None, app: App | None = None) -> FastAPI:
    """The web app for `app` (default: the one JOBBRIDGE_APP names)."""
    settings = settings or get_settings()
    found = app or load_app(settings.jobbridge_app)
    # Made as a worker or a publish would make them, so the broker probe sees the same
    # state whichever process started first.
    make_embedded_broker_folders(settings)
    registry = found.registry
    configure_logging(settings.log_format)
    web = create_documented_app(settings)
    web.router.lifespan_context = _lifespan
    web.add_exception_handler(RequestValidationError, responses.invalid_request)
    redirect_slashes_by_path(web)

    deliveries: dict[str, Endpoint] = {}
    if settings.inngest_serves:
        # Without a signing key (or a dev server) /api/inngest is not served at all: the
        # SDK's dev mode accepts unsigned calls, which must never be the default.
        deliveries[INNGEST_PATH] = serve_inngest(web, settings, registry)
    deliveries.update(add_job_routes(web, settings, registry))
    if found.add_routes is not None:
        found.add_routes(web, settings)
    # Added last, outermost first: the Inngest gate, then the deliveries' routes, then
    # the app's own middleware.
    web.add_middleware(DirectRoutes, endpoints=deliveries)
    if settings.inngest_serves:
        add_inngest_gate(web, settings)
    add_metrics_route(web, settings, found.audit)
    add_status_routes(web, settings, found)
    registry.close()  # routes and functions are made: a later job would be served by neither
    if settings.api_docs != "off":
        document_routes(
            web,
            jobs=[
                (path, spec.payload)
                for spec in registry.jobs.values()
                for path in (spec.route, *spec.aliases)
            ],
            crons=[cron.route for cron in registry.crons.values()],
        )

    def health() -> tuple[dict[str, Any], int]:
        database, _ = check_database(settings, HEALTH_TIMEOUT_SECONDS)
        broker = check_broker(settings, HEALTH_TIMEOUT_SECONDS)
        store = check_redis_store(settings, HEALTH_TIMEOUT_SECONDS)
        # A Redis that is configured and down fails the check; none configured does not.
        store_down = store is not None and store.ok is False
        ok = bool(database.ok and broker.ok and not store_down)
        body: dict[str, Any] = {
            "ok": ok,
            "database": _public(database),
            "broker": {**_public(broker), "kind": settings.broker_kind},
        }
        if store is not None and store.ok is not None:  # Redis apart from the broker
            body["redis"] = _public(store)
        return body, 200 if ok else 503

    # /healthz is public: a burst of it shares one round of probes (each opens its own
    # connections) instead of opening as many connections as it has requests.
    checked = AnswerCache(health, HEALTH_CACHE_SECONDS)

    async def healthz() -> JSONResponse:
        # A new response each time: a middleware may change a response's headers in place.
        body, status = await checked.get()
        return JSONResponse(body, status)

    web.add_api_route("/healthz", healthz, methods=["GET"])
    # HEAD too (load balancers' checks), once in the API docs: under GET's operation.
    web.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
    return web


@asynccontextmanager
async def _lifespan(_web: FastAPI) -> AsyncIterator[None]:
    yield
    # What the deliveries opened on this loop: Redis and database connections.
    await redis_store.close_loop_client()
    await loop_reads.close_loop_pool()


def _public(check: Check) -> dict[str, Any]:
    """/healthz is public: the detail (hosts, users) goes to the log, not the answer."""
    if check.ok:
        return {"ok": True, "latency_ms": check.latency_ms}
    log.warning("health check of the %s failed: %s", check.name, check.detail)
    return {"ok": False, "error": check.error_type or "unavailable"}
