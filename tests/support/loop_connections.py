"""The connections the event loop's reads open, recorded for a test to look at."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest


def connections_opened(monkeypatch: pytest.MonkeyPatch) -> list[asyncpg.Connection]:
    """The asyncpg connections opened from now on (the loop's reads), in order."""
    opened: list[asyncpg.Connection] = []
    connect = asyncpg.connect

    async def recording_connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        opened.append(await connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(asyncpg, "connect", recording_connect)
    return opened
