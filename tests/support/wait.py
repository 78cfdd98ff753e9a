"""Polls with a deadline: the only way tests wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Deadline:
    """The one deadline of a poll, and the failure that names what it waited for."""

    def __init__(self, timeout: float, what: object) -> None:
        self.timeout, self.what = timeout, what
        self.at = time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise AssertionError(f"timed out after {self.timeout}s waiting for {self.what}")


def wait_for(
    check: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = _Deadline(timeout, what or check)
    while not (last := check()):
        deadline.check()
        time.sleep(interval)
    return last


async def wait_on_loop(
    check: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.01, what: str = ""
) -> T:
    """`wait_for` from a coroutine: the event loop runs on while it waits."""
    deadline = _Deadline(timeout, what or check)
    while not (last := check()):
        deadline.check()
        await asyncio.sleep(interval)
    return last


def wait_until_time(epoch_seconds: float) -> None:
    """Wait for the wall clock to pass a moment a provider was told to wait for."""
    remaining = epoch_seconds - time.time()
    if remaining > 0:
        time.sleep(remaining)
