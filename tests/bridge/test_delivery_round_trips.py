"""With REDIS_URL, a job route asks Redis from the event loop (the replay guard and the
ledger check in one round trip before the job, the ledger's SET after it), so that the
delivery thread runs the job alone; the web app closes that client when it stops."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from redis import asyncio as redis_asyncio

from bridge.store import redis_store
from bridge.web.factory import create_app
from tests.support import env
from tests.support.fake_qstash import signed_headers

EXECUTE = "/api/scheduled-actions/execute"
MISSING = json.dumps({"scheduledActionId": "no-such-action"}).encode()
INVALID = json.dumps({"scheduledActionId": ""}).encode()  # failed for good: recorded


@pytest.fixture
def web(configure: Callable[..., Any]) -> Iterator[TestClient]:
    settings = configure(**env.QSTASH_ENV)
    assert settings.redis_url is not None
    with TestClient(create_app(settings)) as client:
        yield client


def deliver(web: TestClient, message_id: str, body: bytes = MISSING) -> Any:
    return web.post(EXECUTE, content=body, headers=signed_headers(body, EXECUTE, message_id))


def test_a_delivery_asks_redis_from_the_event_loop_only(
    web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_thread_client() -> redis.Redis:
        raise AssertionError("a delivery thread asked Redis")

    monkeypatch.setattr(redis_store, "client", no_thread_client)
    message_id = f"msg_{uuid.uuid4().hex}"

    first = deliver(web, message_id, INVALID)
    again = deliver(web, message_id, INVALID)  # redelivered, a new token: from the ledger
    other = deliver(web, f"msg_{uuid.uuid4().hex}")

    assert first.json()["outcome"] == "failed"
    recorded = redis.Redis.from_url(os.environ["REDIS_URL"]).get(
        f"{os.environ['REDIS_KEY_PREFIX']}jobbridge:delivered:qstash:"
        f"inbox-zero/scheduled-action.execute:{message_id}"
    )
    assert recorded == b"inbox-zero/scheduled-action.execute failed"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert other.status_code == 200 and other.json()["outcome"] == "skipped"


def test_the_web_app_closes_its_redis_client_when_it_stops(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[redis_asyncio.Redis] = []
    real_close = redis_asyncio.Redis.aclose

    async def recording_close(self: redis_asyncio.Redis, *args: Any, **kwargs: Any) -> None:
        closed.append(self)
        await real_close(self, *args, **kwargs)

    monkeypatch.setattr(redis_asyncio.Redis, "aclose", recording_close)
    settings = configure(**env.QSTASH_ENV)
    with TestClient(create_app(settings)) as client:
        assert deliver(client, f"msg_{uuid.uuid4().hex}").status_code == 200
        used = [made for _, made in redis_store._loop_clients.values()]

    assert len(used) == 1 and closed == used


def test_a_burst_larger_than_the_loop_clients_connections_waits_for_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_store, "LOOP_CONNECTIONS", 2)
    key = redis_store.key("test:burst:", uuid.uuid4().hex)

    async def burst() -> list[Any]:
        try:
            client = redis_store.loop_client()
            return await asyncio.gather(*(client.incr(key) for _ in range(40)))
        finally:
            await redis_store.close_loop_client()

    answers = asyncio.run(burst())

    assert sorted(answers) == list(range(1, 41))
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key)
