"""`/healthz` is public: a burst of requests shares one round of probes, so it cannot be
used to open a connection to every store per request."""

from __future__ import annotations

from typing import Any

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
