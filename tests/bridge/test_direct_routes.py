"""The delivery routes are answered ahead of FastAPI's router, and only their POSTs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.apps import load_app
from bridge.web import create_app
from config import Settings
from tests.support import env

GREET = "/api/hello/greet"
ADA = b'{"name": "Ada"}'
DIRECT = {"Content-Type": "application/json", "x-api-key": env.INTERNAL_API_KEY}


class SeenPaths:
    """An app's own middleware, recording the paths it sees."""

    paths: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            SeenPaths.paths.append(scope["path"])
        await self.app(scope, receive, send)


def add_seen_paths(web: FastAPI, settings: Settings) -> None:
    web.add_middleware(SeenPaths)


@pytest.fixture
def hello(configure: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The hello example's web app, with a middleware of its own."""
    monkeypatch.setenv("HELLO_OUTBOX", str(tmp_path / "outbox"))
    SeenPaths.paths = []
    app = dataclasses.replace(load_app("examples.hello"), add_routes=add_seen_paths)
    yield create_app(configure(), app)


def test_a_delivery_is_answered_ahead_of_the_apps_own_middleware(hello: FastAPI) -> None:
    with TestClient(hello) as web:
        delivered = web.post(GREET, content=ADA, headers=DIRECT)
        web.get("/healthz")

    assert delivered.json() == {"outcome": "done", "detail": "greeted Ada (http)"}
    assert SeenPaths.paths == ["/healthz"]


def test_another_method_on_a_job_route_is_answered_405_by_the_router(hello: FastAPI) -> None:
    with TestClient(hello) as web:
        response = web.get(GREET, headers=DIRECT)

    assert response.status_code == 405
    assert SeenPaths.paths == [GREET]


def test_a_job_route_behind_a_proxys_root_path_is_answered_ahead_too(hello: FastAPI) -> None:
    with TestClient(hello, root_path="/jobs") as web:
        response = web.post("/jobs" + GREET, content=ADA, headers=DIRECT)

    assert response.json()["outcome"] == "done"
    assert SeenPaths.paths == []


def test_a_job_route_with_a_trailing_slash_is_redirected_by_the_router(hello: FastAPI) -> None:
    with TestClient(hello, follow_redirects=False) as web:
        response = web.post(GREET + "/", content=ADA, headers=DIRECT)

    assert response.status_code == 307
    assert response.headers["location"] == GREET


def test_a_delivery_whose_route_raises_is_answered_500(
    hello: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in a delivery route")

    monkeypatch.setattr("bridge.web.job_routes.run_delivery", broken)
    with TestClient(hello, raise_server_exceptions=False) as web:
        response = web.post(GREET, content=ADA, headers=DIRECT)

    assert response.status_code == 500  # by FastAPI's outermost layer, which logs it
