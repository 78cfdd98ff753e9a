"""`/healthz` is public: a burst of requests shares one round of probes, so it cannot be
used to open a connection to every store per request."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bridge.ops import probes
from bridge.web import factory
from config import get_settings


def test_health_checks_in_a_burst_share_one_round_of_probes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds: list[Any] = []

    def counted(*args: Any) -> Any:
        rounds.append(args)
        return probes.check_database(*args)

    monkeypatch.setattr(factory, "check_database", counted)
    with TestClient(factory.create_app(get_settings())) as web:
        answers = [web.get("/healthz") for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200] * 5
    assert len(rounds) == 1


def test_health_is_checked_again_once_its_answer_is_old(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[Any] = []

    def counted(*args: Any) -> Any:
        rounds.append(args)
        return probes.check_database(*args)

    monkeypatch.setattr(factory, "check_database", counted)
    monkeypatch.setattr(factory, "HEALTH_CACHE_SECONDS", 0.0)
    with TestClient(factory.create_app(get_settings())) as web:
        web.get("/healthz")
        web.get("/healthz")

    assert len(rounds) == 2


def test_concurrent_health_checks_during_a_slow_round_share_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds: list[Any] = []
    slow = threading.Event()

    def counted(*args: Any) -> Any:
        rounds.append(args)
        slow.wait(0.3)  # a store slower than the answer's second of life: never set
        return probes.check_database(*args)

    monkeypatch.setattr(factory, "check_database", counted)
    monkeypatch.setattr(factory, "HEALTH_CACHE_SECONDS", 0.1)
    app = factory.create_app(get_settings())

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as web:
            answers = await asyncio.gather(*(web.get("/healthz") for _ in range(4)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [200] * 4
    assert len(rounds) == 1
