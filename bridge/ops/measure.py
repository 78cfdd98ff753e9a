"""How a probe reports: how long it took, and its error in one line."""

from __future__ import annotations

import time


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def describe(error: BaseException) -> str:
    """One line for an operator: the driver's own error rather than SQLAlchemy's wrapper,
    first line only (drivers add multi-line hints and links a status line cannot hold)."""
    error = getattr(error, "orig", None) or error
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
