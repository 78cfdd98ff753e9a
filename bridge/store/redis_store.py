"""The shim's Redis keys (Celery's are kombu's business), all named here, and `key()`,
which puts every key (the app's too) under REDIS_KEY_PREFIX, so that deployments and
test runs sharing one Redis never meet; and the clients: `client()` for threads,
`on_loop()` for the event loop, which sends what one turn of the loop asks together."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import redis
from redis import asyncio as redis_asyncio

from bridge.store.background import in_background
from bridge.store.idle_connections import IdleConnections
from bridge.store.tick_batch import TickBatch
from config import get_settings

DELIVERED = "jobbridge:delivered:"  # + provider:delivery id -> final outcome, with a TTL
# + QStash token id (jti) -> the message id it came with, until the token expires.
SEEN_SIGNATURE = "jobbridge:seen-signature:"
# Per-key limits on the Celery path (bridge/celery/limits.py), each + job fn_id:key value.
# Sorted set of the runs holding a concurrency slot: holder token -> lease expiry (ms).
LIMIT_HOLDERS = "jobbridge:limit:holders:"
# Sorted set of recent starts for a throttle: start token -> start time (ms).
LIMIT_STARTS = "jobbridge:limit:starts:"


# How long a command, or the event loop's pipeline, waits for Redis.
TIMEOUT_SECONDS = 5


def key(*parts: str) -> str:
    return get_settings().redis_key_prefix + "".join(parts)


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )


def client() -> redis.Redis:
    return _client_for(_url())


# An asyncio client's connections belong to the event loop that opened them: one client
# per loop and URL (a web process runs one loop; tests run several).
# Pipelines on their way at once, each on a connection of its own: what the loop's
# deliveries ask meanwhile goes in the next one.
LOOP_PIPELINES = 4
# One command: its name and arguments, as redis-py's `execute_command` takes them.
Command = tuple[str | int | float | bytes, ...]


class _LoopConnections:
    """A loop's connections for its pipelines (bridge/store/idle_connections.py); the
    commands go out through redis-py's own packing and replies."""

    def __init__(self, client: redis_asyncio.Redis, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self._idle: IdleConnections[redis_asyncio.Connection] = IdleConnections(loop, _disconnect)

    async def take(self) -> redis_asyncio.Connection:
        connection = self._idle.take()
        if connection is not None:
            if not await _ended(connection):
                return connection
            await _disconnect(connection)
        pool = self.client.connection_pool
        made: redis_asyncio.Connection = pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await made.connect()  # type: ignore[no-untyped-call]
        except BaseException:  # refused, or cancelled at the batch's timeout mid-handshake
            await _disconnect(made)
            raise
        return made

    def give_back(self, connection: redis_asyncio.Connection) -> None:
        self._idle.give_back(connection)

    async def close(self) -> None:
        for connection in self._idle.drain():
            with contextlib.suppress(Exception):
                await _disconnect(connection)


async def _disconnect(connection: redis_asyncio.Connection) -> None:
    await connection.disconnect(nowait=True)


async def _ended(connection: redis_asyncio.Connection) -> bool:
    """Whether an idle connection was closed meanwhile (a server's restart or idle
    timeout, a reset by something between), so that a new one is opened before anything
    is sent: its socket is closing (a reset), or it has something to read (the server's
    end; nothing else comes unasked). redis-py's pool skips the second check while its
    maintenance notifications are on, as they are by default, and has no first."""
    writer = getattr(connection, "_writer", None)  # redis-py's asyncio StreamWriter
    if writer is not None and writer.is_closing():
        return True
    try:
        return bool(await connection.can_read())
    except (redis.ConnectionError, OSError):
        return True


@dataclass(frozen=True)
class _LoopClient:
    url: str
    connections: _LoopConnections
    batch: TickBatch[tuple[Command, ...], list[Any]]


_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
    weakref.WeakKeyDictionary()
)


async def on_loop(*commands: Command) -> list[Any]:
    """The replies to `commands`, from the running event loop. They go to Redis in one
    pipeline with those that other deliveries send in the same turn of the loop
    (bridge/store/tick_batch.py): a reply that is an error raises it here, and a
    connection that fails raises for every delivery of the batch."""
    return await _loop_client(asyncio.get_running_loop()).batch.ask(commands)


def _loop_client(loop: asyncio.AbstractEventLoop) -> _LoopClient:
    url = _url()
    found = _loop_clients.get(loop)
    if found is not None and found.url == url:
        return found
    if found is not None:  # REDIS_URL changed (tests do): the old client closes meanwhile
        in_background(_close(found))
    # The pool only makes the connections (from the URL); TickBatch keeps them to
    # LOOP_PIPELINES. No socket timeout (redis-py's default is 5 s): the batch is timed
    # as a whole, with one timer instead of one for every reply.
    pool = redis_asyncio.ConnectionPool.from_url(
        url,
        max_connections=LOOP_PIPELINES,
        socket_connect_timeout=TIMEOUT_SECONDS,
        socket_timeout=None,
    )
    connections = _LoopConnections(redis_asyncio.Redis.from_pool(pool), loop)
    batch = TickBatch(
        partial(_send, connections),
        loop,
        most_in_flight=LOOP_PIPELINES,
        timeout_seconds=TIMEOUT_SECONDS,
        timed_out=_timed_out,
    )
    made = _LoopClient(url, connections, batch)
    _loop_clients[loop] = made
    return made


async def _send(connections: _LoopConnections, requests: list[tuple[Command, ...]]) -> list[Any]:
    """Each request's replies, from one pipeline of all their commands: one write, and
    the replies read as redis-py's client reads them (a reply that is an error in its
    place). Not retried: a command may have run before its connection failed (the
    replay guard's SET NX, sent again, would refuse its own delivery)."""
    every = [command for commands in requests for command in commands]
    connection = await connections.take()
    try:
        read = await _pipeline(connections.client, connection, every)
    except BaseException:
        # Cancelled at the batch's timeout, or cut off: its replies are unknown.
        await connection.disconnect(nowait=True)
        raise
    connections.give_back(connection)
    replies = iter(read)
    answers: list[Any] = []
    for commands in requests:
        mine = [next(replies) for _ in commands]
        error = next((reply for reply in mine if isinstance(reply, Exception)), None)
        answers.append(mine if error is None else error)
    return answers


async def _pipeline(
    client: redis_asyncio.Redis, connection: redis_asyncio.Connection, commands: list[Command]
) -> list[Any]:
    """`commands` sent in one write, and their replies, each as redis-py's client gives
    it (an error reply as its exception)."""
    await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
    read: list[Any] = []
    for command in commands:
        try:
            read.append(await client.parse_response(connection, str(command[0])))
        except redis.ResponseError as refused:
            read.append(refused)
    return read


def _timed_out() -> Exception:
    return redis.TimeoutError(f"no answer from Redis in {TIMEOUT_SECONDS} s")


async def close_loop_client() -> None:
    """Close the running event loop's client, if it made one (at the web app's end)."""
    found = _loop_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await _close(found)


async def _close(found: _LoopClient) -> None:
    """Once every batch on its way is answered, close the client's connections."""
    await found.batch.close()
    await found.connections.close()
    await found.connections.client.aclose()


def _url() -> str:
    url = get_settings().redis_url
    if url is None:
        raise RuntimeError("REDIS_URL is not set")
    return url
