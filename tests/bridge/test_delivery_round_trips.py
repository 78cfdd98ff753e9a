"""With REDIS_URL, a job route asks Redis from the event loop (the replay guard and the
ledger check in one round trip before the job, the ledger's SET after it), so that the
delivery thread runs the job alone, and in one pipeline with the other deliveries of the
same turn of the loop; the web app closes that client when it stops."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from fastapi.testclient import TestClient
from redis import asyncio as redis_asyncio

from bridge.store import idle_connections, redis_store
from bridge.web.factory import create_app
from tests.support import env
from tests.support.fake_qstash import signed_headers
from tests.support.services import taken_port
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import wait_on_loop

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


def test_the_web_app_closes_its_redis_connections_when_it_stops(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = connections_made(monkeypatch)
    settings = configure(**env.QSTASH_ENV)
    with TestClient(create_app(settings)) as client:
        assert deliver(client, f"msg_{uuid.uuid4().hex}").status_code == 200
        connected_while_serving = [c for c in made if c.is_connected]

    assert len(connected_while_serving) == 1
    assert not any(connection.is_connected for connection in made)


def test_commands_asked_in_one_turn_of_the_loop_go_in_one_pipeline_each_with_its_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = redis_store.key("test:burst:", uuid.uuid4().hex)
    pipelines: list[int] = []
    real_pack = redis_asyncio.Connection.pack_commands

    def counting_pack(self: redis_asyncio.Connection, commands: Any) -> Any:
        pipelines.append(len(commands))
        return real_pack(self, commands)

    monkeypatch.setattr(redis_asyncio.Connection, "pack_commands", counting_pack)

    async def burst() -> list[Any]:
        try:
            answers = await asyncio.gather(
                *(redis_store.on_loop(("INCR", key), ("EXISTS", key)) for _ in range(40))
            )
            return list(answers)
        finally:
            await redis_store.close_loop_client()

    answers = asyncio.run(burst())

    assert pipelines == [80]
    assert sorted(incremented for incremented, _ in answers) == list(range(1, 41))
    assert all(exists == 1 for _, exists in answers)
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key)


def test_a_command_redis_refuses_fails_its_delivery_alone() -> None:
    key = redis_store.key("test:refused:", uuid.uuid4().hex)

    async def both() -> list[Any]:
        try:
            answers = await asyncio.gather(
                redis_store.on_loop(("SET", key, "text"), ("INCR", key)),  # not a number
                redis_store.on_loop(("EXISTS", key)),
                return_exceptions=True,
            )
            return list(answers)
        finally:
            await redis_store.close_loop_client()

    refused, other = asyncio.run(both())

    assert isinstance(refused, redis.ResponseError) and "not an integer" in str(refused)
    assert other == [1]
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key)


def test_a_delivery_whose_redis_does_not_answer_is_asked_again_later(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "TIMEOUT_SECONDS", 0.2)
    with taken_port() as silent:  # accepts connections, never answers
        settings = configure(**env.QSTASH_ENV, REDIS_URL=f"redis://127.0.0.1:{silent}/0")
        with TestClient(create_app(settings)) as client:
            answer = deliver(client, f"msg_{uuid.uuid4().hex}")

    assert answer.status_code == 503
    assert answer.json()["error"] == (
        "the delivery ledger is unavailable (TimeoutError); retry later"
    )


def test_a_connection_the_server_closed_while_idle_is_opened_again_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = connections_made(monkeypatch)

    async def around_a_kill() -> tuple[Any, Any, Any]:
        try:
            (first_id,) = await redis_store.on_loop(("CLIENT", "ID"))
            redis.Redis.from_url(os.environ["REDIS_URL"]).client_kill_filter(_id=first_id)
            # The loop reads the server's end, as it has long before for a connection
            # closed while it idled.
            reader = made[0]._reader
            assert reader is not None
            await wait_on_loop(reader.at_eof, timeout=2, what="the server's end")
            (second_id,) = await redis_store.on_loop(("CLIENT", "ID"))
            return first_id, second_id, await redis_store.on_loop(("PING",))
        finally:
            await redis_store.close_loop_client()

    first_id, second_id, pong = asyncio.run(around_a_kill())

    assert second_id != first_id and pong == [True]


def test_a_pipeline_whose_connection_fails_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = redis_store.key("test:once:", uuid.uuid4().hex)
    sent: list[int] = []
    real_send = redis_asyncio.Connection.send_packed_command

    async def counting_send(self: redis_asyncio.Connection, *args: Any, **kwargs: Any) -> None:
        sent.append(1)
        await real_send(self, *args, **kwargs)

    async def cut_before_the_reply(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("Connection closed by server.")

    async def once() -> tuple[BaseException | None, bool]:
        try:
            await redis_store.on_loop(("PING",))  # a connection used before
            monkeypatch.setattr(redis_asyncio.Connection, "send_packed_command", counting_send)
            monkeypatch.setattr(redis_asyncio.Redis, "parse_response", cut_before_the_reply)
            error: BaseException | None = None
            try:
                await redis_store.on_loop(("SET", key, "first", "NX"))
            except redis.ConnectionError as failed:
                error = failed
            return error, made[0].is_connected
        finally:
            monkeypatch.undo()
            await redis_store.close_loop_client()

    made = connections_made(monkeypatch)
    error, still_connected = asyncio.run(once())

    assert isinstance(error, redis.ConnectionError)
    assert sent == [1]  # a SET NX run twice would answer its own delivery "replayed"
    assert len(made) == 1 and not still_connected  # its replies unread: never used again
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(key)


def test_a_connection_idle_too_long_is_not_used_again(monkeypatch: pytest.MonkeyPatch) -> None:
    async def twice() -> tuple[Any, Any]:
        try:
            (first_id,) = await redis_store.on_loop(("CLIENT", "ID"))
            monkeypatch.setattr(idle_connections, "IDLE_SECONDS", 0.0)
            (second_id,) = await redis_store.on_loop(("CLIENT", "ID"))
            return first_id, second_id
        finally:
            await redis_store.close_loop_client()

    first_id, second_id = asyncio.run(twice())

    assert second_id != first_id
    listed = redis.Redis.from_url(os.environ["REDIS_URL"]).client_list()
    assert first_id not in {int(client["id"]) for client in listed}


def connections_made(monkeypatch: pytest.MonkeyPatch) -> list[redis_asyncio.Connection]:
    """The Redis connections the loop's pipelines make from now on, in order."""
    made: list[redis_asyncio.Connection] = []
    real_make = redis_asyncio.ConnectionPool.make_connection

    def recording_make(self: redis_asyncio.ConnectionPool) -> Any:
        made.append(real_make(self))  # type: ignore[no-untyped-call]
        return made[-1]

    monkeypatch.setattr(redis_asyncio.ConnectionPool, "make_connection", recording_make)
    return made


def test_a_connection_reset_while_idle_is_opened_again_before_use(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = connections_made(monkeypatch)
    redis_url = urlsplit(os.environ["REDIS_URL"])
    assert redis_url.hostname is not None and redis_url.port is not None

    async def around_a_reset(proxy: TcpProxy) -> tuple[Any, Any]:
        try:
            first = await redis_store.on_loop(("PING",))
            proxy.cut()  # resets the connection, as something between may
            proxy.restore()
            # The loop reads the reset, as it has long before for a connection reset
            # while it idled.
            writer = made[0]._writer
            assert writer is not None
            await wait_on_loop(writer.is_closing, timeout=2, what="the reset")
            return first, await redis_store.on_loop(("PING",))
        finally:
            await redis_store.close_loop_client()

    with TcpProxy(redis_url.hostname, redis_url.port) as proxy:
        configure(REDIS_URL=f"redis://{proxy.address}{redis_url.path}")
        first, second = asyncio.run(around_a_reset(proxy))

    assert first == [True] and second == [True]
    assert len(made) == 2


def test_a_client_replaced_by_another_redis_url_closes_its_connections(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = connections_made(monkeypatch)
    first_url = os.environ["REDIS_URL"]

    async def switched() -> bool:
        try:
            await redis_store.on_loop(("PING",))
            configure(REDIS_URL=first_url.rsplit("/", 1)[0] + "/1")  # another database
            await redis_store.on_loop(("PING",))
            await wait_on_loop(
                lambda: not made[0].is_connected, timeout=2, what="the old connection to close"
            )
            connected: bool = made[0].is_connected
            return connected
        finally:
            await redis_store.close_loop_client()

    assert asyncio.run(switched()) is False
    assert len(made) == 2
