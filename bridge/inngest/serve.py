"""`/api/inngest`: the registry's functions served with the Inngest SDK, behind the gate."""

from __future__ import annotations

import inngest.fast_api
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bridge.inngest.client import make_inngest_client, signature_check
from bridge.inngest.functions import all_functions
from bridge.inngest.gate import InngestGate
from bridge.registry import Registry
from config import Settings

INNGEST_PATH = "/api/inngest"


def serve_inngest(app: FastAPI, settings: Settings, registry: Registry) -> None:
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
        all_functions(client, registry),
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
