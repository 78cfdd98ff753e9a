"""The AI port the jobs use (categorize, clean.process, ai.digest) and its implementations."""

from __future__ import annotations

from tasks.ai.offline import OfflineAI
from tasks.ai.port import AI, CleanDecision


def default_ai() -> AI:
    """The AI the jobs use. The one place a real model would be chosen (from Settings),
    so no job names an implementation."""
    return OfflineAI()


__all__ = ["AI", "CleanDecision", "OfflineAI", "default_ai"]
