"""The connections an event loop's batches (bridge/store/tick_batch.py) have given back,
for the next batch to take: one list per loop and server, newest last.

TickBatch lets only so many batches go at once, one connection each, so a batch never
waits for a connection and needs none of a pool's queueing: taking one is a list's
pop, giving it back an append. The drivers' pools (asyncpg's, redis-py's with its
`Pipeline`) spent 40-45 µs of CPU a batch on lending and taking back, as much as the
read itself. A connection left unused for IDLE_SECONDS is closed, by a timer, so that a
quiet process lets its connections go as the drivers' pools do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from bridge.store.background import in_background

Connection = TypeVar("Connection")

IDLE_SECONDS = 300.0


class IdleConnections(Generic[Connection]):
    """Connections given back and not yet taken again; `close` ends one (in the
    background: it may wait for the server's goodbye)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        close: Callable[[Connection], Awaitable[None]],
    ) -> None:
        self._loop = loop
        self._close = close
        self._idle: list[tuple[Connection, float]] = []  # and since when, oldest first
        self._sweep: asyncio.TimerHandle | None = None

    def take(self) -> Connection | None:
        """The connection given back last (the least likely to be stale), or None."""
        self._close_stale()
        return self._idle.pop()[0] if self._idle else None

    def give_back(self, connection: Connection) -> None:
        self._idle.append((connection, time.monotonic()))
        if self._sweep is None:
            self._sweep = self._loop.call_later(IDLE_SECONDS, self._swept)

    def drain(self) -> list[Connection]:
        """Every idle connection, for the caller to close (at the loop's end)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        return [connection for connection, _ in idle]

    def _swept(self) -> None:
        self._sweep = None
        self._close_stale()
        if self._idle:  # again when the oldest left would turn stale
            wait = IDLE_SECONDS - (time.monotonic() - self._idle[0][1])
            self._sweep = self._loop.call_later(max(wait, 0.0), self._swept)

    def _close_stale(self) -> None:
        now = time.monotonic()
        while self._idle and now - self._idle[0][1] > IDLE_SECONDS:
            in_background(self._close(self._idle.pop(0)[0]))
