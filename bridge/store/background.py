"""Clean-up the event loop runs on its own, awaited by no one: connections closed when
idle, a client or pool replaced. The loop holds tasks weakly, so each is kept here
until done; an error it meets is dropped (what it was closing is gone either way)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

_running: set[asyncio.Task[None]] = set()


def in_background(work: Awaitable[Any]) -> None:
    """Run `work` on the running event loop, without waiting for it."""

    async def quietly() -> None:
        with contextlib.suppress(Exception):
            await work

    task = asyncio.get_running_loop().create_task(quietly())
    _running.add(task)
    task.add_done_callback(_running.discard)
