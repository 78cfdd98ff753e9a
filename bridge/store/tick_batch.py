"""Requests made in the same turn of the event loop, sent to their server together.

A web process answers many deliveries at once, and each asks Redis and PostgreSQL a
small question (the replay guard and the ledger: bridge/store/redis_store.py `on_loop`;
an early answer's read: bridge/store/loop_reads.py). A round trip costs the client far
more CPU than the question (a socket write that wakes the server, a wait, a read, the
driver's own Python: 40-100 µs on the 2-core machine of bench/receivers.py, where a
whole bare FastAPI answer costs about 150 µs). A TickBatch collects what the deliveries
ask while the loop runs their code, and at the end of that turn hands it all to one
`send` (one pipeline: one write, one read), then gives each asker its own answer. A
request made alone waits for nothing: its batch goes out at the end of the same turn.
What it saved: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")

# Sends a batch; gives one answer per request, in order, or an exception in its place
# (that request's alone). An exception it raises is every request's.
Send = Callable[[list[Request]], Awaitable[Sequence[Answer | BaseException]]]


class TickBatch(Generic[Request, Answer]):
    """The batches of requests for one `send` on one event loop, which its owner keeps
    for that loop (its futures and connections belong to it).

    At most `most_in_flight` batches are on their way at once: what is asked meanwhile
    waits, and goes in one batch as soon as one comes back (so the busier the loop, the
    more each write carries). A batch not answered within `timeout_seconds` is given up:
    its askers, and those waiting behind it, get `timed_out()` at once, an error of the
    store's own kind."""

    def __init__(
        self,
        send: Send[Request, Answer],
        loop: asyncio.AbstractEventLoop,
        *,
        most_in_flight: int,
        timeout_seconds: float,
        timed_out: Callable[[], Exception],
    ) -> None:
        self._send = send
        self._loop = loop
        self._most_in_flight = most_in_flight
        self._timeout_seconds = timeout_seconds
        self._timed_out = timed_out
        self._waiting: list[tuple[Request, asyncio.Future[Answer]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly

    async def ask(self, request: Request) -> Answer:
        """The answer to `request`, sent with the others asked in this turn of the loop
        (or, when the batches in flight are at their most, with those asked until one
        comes back). On the loop it was made for only."""
        answer: asyncio.Future[Answer] = self._loop.create_future()
        if not self._waiting:
            self._loop.call_soon(self._send_waiting)
        self._waiting.append((request, answer))
        return await answer

    def _send_waiting(self) -> None:
        if not self._waiting or len(self._sending) >= self._most_in_flight:
            return  # sent when a batch in flight comes back
        batch, self._waiting = self._waiting, []
        expired: list[bool] = []
        task = self._loop.create_task(self._send_batch(batch, expired))
        timer = self._loop.call_later(self._timeout_seconds, self._expire, task, batch, expired)
        self._sending.add(task)
        task.add_done_callback(partial(self._sent, timer))

    def _expire(
        self,
        task: asyncio.Task[None],
        batch: list[tuple[Request, asyncio.Future[Answer]]],
        expired: list[bool],
    ) -> None:
        """The batch took too long: its askers, and those waiting behind it, are told at
        once; its task is cancelled, and stays in flight until its `send` has given
        up (a driver may take a while to give up on a server)."""
        expired.append(True)
        error = self._timed_out()
        waiting, self._waiting = self._waiting, []
        _fail(batch + waiting, error)
        task.cancel()

    def _sent(self, timer: asyncio.TimerHandle, task: asyncio.Task[None]) -> None:
        timer.cancel()
        self._sending.discard(task)
        self._send_waiting()

    async def _send_batch(
        self, batch: list[tuple[Request, asyncio.Future[Answer]]], expired: list[bool]
    ) -> None:
        try:
            answers = await self._send([request for request, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers to {len(batch)} requests")
        except asyncio.CancelledError:
            if expired:  # its askers were told when it expired
                return
            for _, answer in batch:  # the loop is ending
                answer.cancel()
            raise
        except Exception as error:  # every asker's
            _fail(batch, error)
            return
        for (_, answer), given in zip(batch, answers, strict=True):
            if answer.done():  # its asker gave up (the client went away), or it expired
                continue
            if isinstance(given, BaseException):
                answer.set_exception(given)
            else:
                answer.set_result(given)

    async def close(self) -> None:
        """Send what waits, and wait for every batch on its way (at the loop's end)."""
        while self._sending or self._waiting:
            if not self._sending:
                self._send_waiting()
            await asyncio.gather(*self._sending, return_exceptions=True)


def _fail(batch: list[tuple[Request, asyncio.Future[Answer]]], error: Exception) -> None:
    for _, answer in batch:
        if not answer.done():
            answer.set_exception(error)
