"""The worker threads that run a web process's deliveries (sync job bodies).

All of a process's threads share one GIL with its event loop. Given dozens of short
deliveries at once, a plain thread pool runs them all together: each waits for the
GIL many times over, the loop that reads requests and writes answers is starved, and
the CPU goes to handing the GIL from thread to thread and core to core (measured: a
third more CPU a delivery, and a p99 three times as long, at 64 connections).

So these threads start only `at_once` deliveries at a time, first come first served,
and the rest wait in line. A delivery still running after `settle_seconds` is waiting
on something (a mail server, an API, a lock) rather than using the CPU: it stops
counting, and the next one starts. Slow jobs thus still run up to `most` at once,
as many as the pool has threads, while short ones run a few at a time.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

# Deliveries running at once in a web process, at most (Starlette's own thread pool is
# as large): slow jobs waiting on their mail servers and APIs.
MOST_AT_ONCE = 40
# Deliveries started at once. Measured on 2 cores at 64 connections: 2 and 4 did alike,
# 8 lost a quarter of the rate, 40 (a plain pool) a third; at 8 connections, 8 was
# about 5% ahead of 4.
STARTED_AT_ONCE = 4
# A delivery running this long is taken to be waiting, not computing.
SETTLE_SECONDS = 0.02

_T = TypeVar("_T")
_Work = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DeliveryThreads(Executor):
    def __init__(self, *, at_once: int, most: int, settle_seconds: float, name: str) -> None:
        if not 1 <= at_once <= most:
            raise ValueError(f"at_once must be between 1 and most ({most}), not {at_once}")
        if settle_seconds <= 0:
            raise ValueError(f"settle_seconds must be above 0, not {settle_seconds}")
        self.at_once = at_once
        self.most = most
        self.settle_seconds = settle_seconds
        self._name = name
        self._changed = threading.Condition()
        self._waiting: deque[_Work] = deque()
        self._counted: dict[int, float] = {}  # running and still counted: ticket -> start
        self._tickets = itertools.count()
        self._threads = 0
        self._idle = 0
        self._watching = False  # an idle thread waits for the next delivery to settle
        self._shut = False
        self._mine = threading.local()  # `inside` in this executor's own threads

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        with self._changed:
            if self._shut:
                raise RuntimeError("cannot run a delivery after shutdown")
            self._waiting.append((future, fn, args, kwargs))
            try:
                self._call_a_thread(starting=0)
            except BaseException:
                self._waiting.pop()  # refused, so never run
                raise
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._changed:
            self._shut = True
            if cancel_futures:
                while self._waiting:
                    self._waiting.popleft()[0].cancel()
            self._changed.notify_all()
            if wait:
                if getattr(self._mine, "inside", False):
                    raise RuntimeError("a delivery cannot wait for the threads that run it")
                self._changed.wait_for(lambda: self._threads == 0)

    def _serve(self) -> None:
        self._mine.inside = True
        try:
            while self._serve_one():
                pass
        finally:  # also when something outside the delivery raised (a future's callback)
            with self._changed:
                self._threads -= 1
                if self._waiting:
                    self._call_a_thread(starting=0)
                self._changed.notify_all()  # and whoever waits in shutdown()

    def _serve_one(self) -> bool:
        """Run the next delivery; False at shutdown."""
        with self._changed:
            work = self._next()
            if work is None:
                return False
            ticket = next(self._tickets)
            self._counted[ticket] = time.monotonic()
        try:
            _run(work)
        finally:
            with self._changed:
                self._counted.pop(ticket, None)
        return True

    def _next(self) -> _Work | None:
        """The next delivery this thread may start (waiting for one), None at shutdown.
        Called holding the lock."""
        while True:
            timeout: float | None = None
            if self._waiting:
                now = time.monotonic()
                self._forget_settled(now)
                if len(self._counted) < self.at_once:
                    work = self._waiting.popleft()
                    if self._waiting:
                        self._call_a_thread(starting=1)
                    return work
                if not self._watching:
                    timeout = min(self._counted.values()) + self.settle_seconds - now
            elif self._shut:
                return None
            # One idle thread watches for the next settling; the others sleep until
            # they are woken, rather than all waking together at every deadline.
            watching = timeout is not None
            self._idle += 1
            self._watching = self._watching or watching
            try:
                self._changed.wait(timeout)
            finally:
                self._idle -= 1
                if watching:
                    self._watching = False

    def _call_a_thread(self, *, starting: int) -> None:
        """Deliveries wait: wake an idle thread to start the next or to watch the line,
        or add a thread when none is idle. `starting`: deliveries the caller is about to
        count. Called holding the lock."""
        if not self._idle:
            self._add_thread()
        elif len(self._counted) + starting < self.at_once or not self._watching:
            self._changed.notify()

    def _add_thread(self) -> None:
        """One more thread, unless there are `most`. Also when the line is full: only a
        thread that waits notices when the running ones settle, a busy one cannot.
        Called holding the lock."""
        if self._threads >= self.most:
            return
        self._threads += 1
        name = f"{self._name}-{self._threads}"
        try:
            threading.Thread(target=self._serve, name=name, daemon=True).start()
        except BaseException:
            self._threads -= 1
            if self._threads == 0:
                raise  # no thread would ever run what waits

    def _forget_settled(self, now: float) -> None:
        settled_before = now - self.settle_seconds
        for ticket, started in list(self._counted.items()):
            if started <= settled_before:
                del self._counted[ticket]


def _run(work: _Work) -> None:
    future, fn, args, kwargs = work
    del work
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except Exception as error:
        future.set_exception(error)
        # The traceback keeps this frame: without these, the delivery's arguments
        # would live until the next garbage collection.
        del future, fn, args, kwargs
    except BaseException as error:
        # SystemExit or KeyboardInterrupt from a job, re-raised where the delivery is
        # awaited, would stop the event loop and the whole web process: a failed
        # delivery instead.
        future.set_exception(RuntimeError(f"the delivery raised {error!r}"))
        del future, fn, args, kwargs
    else:
        future.set_result(result)


_deliveries = DeliveryThreads(
    at_once=STARTED_AT_ONCE,
    most=MOST_AT_ONCE,
    settle_seconds=SETTLE_SECONDS,
    name="jobbridge-delivery",
)


async def in_delivery_thread(function: Callable[[], _T]) -> _T:
    """`function()` in one of the process's delivery threads, with the caller's context
    variables, in its turn."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_deliveries, context.run, function)
