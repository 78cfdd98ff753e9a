"""`/api/inngest`: the registry's functions served with the Inngest SDK, behind the gate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import inngest.fast_api
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from bridge.inngest.client import make_inngest_client, signature_check, signing_keys
from bridge.inngest.functions import all_functions
from bridge.inngest.gate import InngestGate
from bridge.inngest.quick_signatures import quick_check
from bridge.registry import INNGEST_PATH, Registry
from config import Settings


def serve_inngest(
    app: FastAPI, settings: Settings, registry: Registry
) -> Callable[[Request], Awaitable[Response]]:
    """The SDK's routes at INNGEST_PATH; returns its POST endpoint (a function call), which
    the web app answers ahead of its router (bridge/web/direct_routes.py). Nothing is
    served safely before `add_inngest_gate`."""
    client = make_inngest_client(settings)
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
    calls = None
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == INNGEST_PATH:
            route.include_in_schema = False
            if route.methods and "POST" in route.methods:
                calls = route.endpoint
    if calls is None:
        raise RuntimeError(f"the Inngest SDK served no POST route at {INNGEST_PATH}")
    return calls


def add_inngest_gate(app: FastAPI, settings: Settings) -> None:
    """The gate in front of INNGEST_PATH: added last, it is the outermost of the app's
    middleware, so every request there passes it first, a call the web app answers ahead
    of its router included."""
    app.add_middleware(
        InngestGate,
        path=INNGEST_PATH,
        max_body_bytes=settings.inngest_max_body_bytes,
        signature_check=None if settings.inngest_is_dev else signature_check(settings),
        quick_check=None if settings.inngest_is_dev else quick_check(signing_keys(settings)),
    )
