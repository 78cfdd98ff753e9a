"""The API's own documentation: `/docs`, `/redoc`, `/openapi.json`, served offline.

`API_DOCS` decides who sees them: `public` (the embedded default, for `make dev`),
`private` (callers holding INTERNAL_API_KEY, as `x-api-key`, a Bearer token, or the
password of HTTP Basic auth so that a browser can log in), or `off` (not served at all).
Swagger UI and ReDoc come from the fastapi-offline package, never from a CDN.

Each job route reads its raw body itself (signatures are over the raw bytes), so FastAPI
cannot see its payload model: `document_job_routes` writes each one into the schema.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette._utils import get_route_path  # how the router itself reads the path
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.web import responses
from bridge.web.auth import same_secret
from bridge.web.operator_auth import presented_secret
from config import Settings

DOCS_PATHS = ("/docs", "/redoc", "/openapi.json", "/static-offline-docs")
TITLE, VERSION = "jobbridge", "0.1.0"


def create_documented_app(settings: Settings) -> FastAPI:
    if settings.api_docs == "off":
        return FastAPI(
            title=TITLE, version=VERSION, docs_url=None, redoc_url=None, openapi_url=None
        )
    app = FastAPIOffline(title=TITLE, version=VERSION)
    if settings.api_docs == "private":
        app.add_middleware(DocsNeedTheInternalKey, settings=settings)
    return app


class DocsNeedTheInternalKey:
    """Plain ASGI middleware: the documentation paths answer 401 without the key."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = scope["type"] == "http" and get_route_path(scope).startswith(DOCS_PATHS)
        if guarded and not self._holds_key(dict(scope["headers"])):
            refusal = responses.error(401, "the API docs need INTERNAL_API_KEY")
            refusal.headers["WWW-Authenticate"] = 'Basic realm="jobbridge API docs"'
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _holds_key(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key", b"").decode("latin-1")
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        return same_secret(given or presented_secret(authorization), self.settings.internal_api_key)


def document_routes(
    app: FastAPI, *, jobs: Iterable[tuple[str, type[Any]]], crons: Iterable[str]
) -> None:
    """Add each job route's request body (its payload model, by wire name), its callers
    and its answers, and each cron route's, to the OpenAPI schema, so that generated
    clients and schema-driven fuzzers see them."""
    documented, cron_routes = list(jobs), list(crons)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        with warnings.catch_warnings():
            # A cron route answers GET and POST under one id; made unique below.
            warnings.filterwarnings("ignore", "Duplicate Operation ID")
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        for route, model in documented:
            model_schema = model.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            schemas.update(model_schema.pop("$defs", {}))
            schemas[model.__name__] = model_schema
            operation = schema["paths"][route]["post"]
            reference = {"$ref": f"#/components/schemas/{model.__name__}"}
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": reference}},
            }
            operation["security"] = [{"internalApiKey": []}, {"qstash": []}]
            operation["responses"] = JOB_RESPONSES
        for route in cron_routes:
            for method, operation in schema["paths"][route].items():
                operation["operationId"] += f"-{method}"
                operation["security"] = [{"cronSecret": []}]
                operation["responses"] = CRON_RESPONSES
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


SECURITY_SCHEMES = {
    "qstash": {
        "type": "apiKey",
        "in": "header",
        "name": "Upstash-Signature",
        "description": "QStash's signed JWT over the body and WEBHOOK_URL + route",
    },
    "internalApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "cronSecret": {"type": "http", "scheme": "bearer", "description": "CRON_SECRET"},
}


def _answer(description: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": fields, "required": list(fields)}
            }
        },
    }


_OUTCOME = {"outcome": {"type": "string"}}
JOB_RESPONSES = {
    "200": _answer("done, skipped, or a duplicate of a settled delivery", {**_OUTCOME}),
    "400": _answer(
        "a delivery id over 255 characters (a direct caller)", {"error": {"type": "string"}}
    ),
    "401": _answer("no valid Upstash-Signature or x-api-key", {"error": {"type": "string"}}),
    "413": _answer("body over 1 MiB", {"error": {"type": "string"}}),
    "415": _answer(
        "not a JSON body this app can read (a direct caller)", {"error": {"type": "string"}}
    ),
    "489": _answer(
        "permanent failure (invalid payload, bad data; from QStash, also a body or delivery "
        "id refused as above): QStash does not retry it",
        {**_OUTCOME, "error": {"type": "string"}},
    ),
    "503": _answer("transient failure: retry later", {**_OUTCOME, "error": {"type": "string"}}),
}
CRON_RESPONSES = {
    "200": {
        "description": "the periodic work ran; what it did",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "401": _answer("no valid Bearer CRON_SECRET", {"error": {"type": "string"}}),
}
