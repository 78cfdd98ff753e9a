"""GET /metrics on the web app: Prometheus's text format, behind METRICS_TOKEN (a Bearer
token, or the password of Basic auth: bridge.web.operator_auth).

Without METRICS_TOKEN the route does not exist (404), so the metrics are never public
by accident. GET and HEAD, and `/metrics/` behind the same check
(bridge.web.operator_auth.add_operator_route). With PROMETHEUS_MULTIPROC_DIR the answer
adds up every process writing there (this app's uvicorn workers and a Celery worker on
the same host); the database gauges (bridge.ops.metrics_db) are read here, once, by the
process that answers.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.apps import AppAudit
from bridge.metrics import process_registry
from bridge.ops.metrics_db import DatabaseCollector
from bridge.web.operator_auth import add_operator_route, operator_auth
from config import Settings

METRICS_PATH = "/metrics"


def add_metrics_route(web: FastAPI, settings: Settings, audit: AppAudit | None) -> None:
    """Serve /metrics when METRICS_TOKEN is set; 401 for a missing or wrong token."""
    auth = operator_auth(settings)
    if auth is None:
        return
    registry = process_registry()
    registry.register(DatabaseCollector(settings, audit))

    async def metrics(request: Request) -> Response:
        # The files (and, every 15 s, the database) are read in a thread, not the loop.
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    add_operator_route(web, METRICS_PATH, auth, METRICS_PATH, metrics)
