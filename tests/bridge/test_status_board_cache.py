"""The `/status` page's cache (bridge.web.answer_cache.AnswerCache): one collection at a
time, in one thread of Starlette's pool; the requests that come meanwhile hold none, so
the pool stays free for the other routes (/healthz among them)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import anyio.to_thread
from fastapi.concurrency import run_in_threadpool

from bridge.ops.status_board import Board
from bridge.web.answer_cache import AnswerCache
from bridge.web.status_page import CACHE_SECONDS

T = TypeVar("T")
DEADLINE = 5.0  # seconds any step may take before the test gives up


class Gate:
    """A collection that runs until the test opens the gate; `made` holds its boards."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.open = threading.Event()
        self.made: list[Board] = []

    def __call__(self) -> Board:
        self.started.set()
        assert self.open.wait(DEADLINE), "the test never let the collection finish"
        self.made.append(cast("Board", object()))  # a board of its own, told apart by id
        return self.made[-1]


async def until(happened: Callable[[], bool]) -> None:
    """Poll until `happened()`, for DEADLINE seconds at most."""
    give_up = time.monotonic() + DEADLINE
    while not happened():
        assert time.monotonic() < give_up, "it did not happen in time"
        await asyncio.sleep(0.005)


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


def test_requests_waiting_for_the_first_board_hold_no_thread() -> None:
    gate = Gate()
    cache = AnswerCache(gate, CACHE_SECONDS)

    async def scenario() -> list[Board]:
        pool = anyio.to_thread.current_default_thread_limiter()  # this loop's own
        pool.total_tokens = 2
        requests = [asyncio.create_task(cache.get()) for _ in range(20)]
        await until(gate.started.is_set)
        # The collection holds one thread; the other is still free for another route.
        free = await asyncio.wait_for(run_in_threadpool(lambda: "free"), DEADLINE)
        assert (free, pool.borrowed_tokens) == ("free", 1)
        gate.open.set()
        return list(await asyncio.gather(*requests))

    boards = run(scenario)

    assert len(gate.made) == 1 and all(board is gate.made[0] for board in boards)


def test_a_request_during_a_refresh_is_answered_the_board_before() -> None:
    gate = Gate()
    now = [0.0]
    cache = AnswerCache(gate, ttl=15.0, clock=lambda: now[0])

    async def scenario() -> tuple[Board, Board, Board]:
        gate.open.set()
        first = await cache.get()
        gate.open.clear()
        gate.started.clear()
        now[0] = 16.0  # the board is stale: the next request collects again
        refresh = asyncio.create_task(cache.get())
        await until(gate.started.is_set)
        during = await asyncio.wait_for(cache.get(), DEADLINE)
        gate.open.set()
        return first, during, await refresh

    first, during, after = run(scenario)

    assert len(gate.made) == 2
    assert (first, during, after) == (gate.made[0], gate.made[0], gate.made[1])
