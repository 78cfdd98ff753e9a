"""Polls with a deadline: the only way tests wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)
        last = check()
    return last


async def wait_on_loop(
    check: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.01, what: str = ""
) -> T:
    """`wait_for` from a coroutine: the event loop runs on while it waits."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(interval)
        last = check()
    return last


def wait_until_time(epoch_seconds: float) -> None:
    """Wait for the wall clock to pass a moment a provider was told to wait for."""
    remaining = epoch_seconds - time.time()
    if remaining > 0:
        time.sleep(remaining)
