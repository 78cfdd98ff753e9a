"""An answer collected in a worker thread and reused while it is fresh: for routes whose
answer costs queries or connections (/status, /healthz), so that a burst or a page left
open costs one collection per `ttl` at most.

One collection at a time, and the requests that come meanwhile hold no thread (Starlette's
thread pool is shared with every other route): they are answered the previous answer at
once, or, before the first one, wait on an asyncio lock. An answer is dated when its
collection ends, so the requests that waited for a slow one take it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from fastapi.concurrency import run_in_threadpool

T = TypeVar("T")


class AnswerCache(Generic[T]):
    def __init__(
        self,
        collect: Callable[[], T],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collect, self._ttl, self._clock = collect, ttl, clock
        self._lock = asyncio.Lock()
        self._cached: tuple[float, T] | None = None

    def _fresh(self) -> tuple[T] | None:
        cached = self._cached
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return (cached[1],)
        return None

    async def get(self) -> T:
        if (fresh := self._fresh()) is not None:
            return fresh[0]
        if self._lock.locked() and self._cached is not None:
            return self._cached[1]  # being collected again: the one before meanwhile
        async with self._lock:
            if (fresh := self._fresh()) is not None:  # collected while this one waited
                return fresh[0]
            answer = await run_in_threadpool(self._collect)
            self._cached = (self._clock(), answer)
            return answer
