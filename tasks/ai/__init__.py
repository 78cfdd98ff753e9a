"""The AI port the jobs use (categorize, clean.process, ai.digest) and its implementations."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from tasks.ai.offline import OfflineAI
from tasks.ai.port import AI, CleanDecision
from tasks.ai.settings import AISettings, load_ai_settings

if TYPE_CHECKING:
    from tasks.ai.openai_chat import OpenAIChatAI


def default_ai() -> AI:
    """The AI the jobs use, chosen from the AI_* variables as they are now: a chat model
    when AI_MODEL is set, else the offline rules. ConfigError names a bad variable.

    The one place an implementation is chosen, so no job names one."""
    settings = load_ai_settings()
    if not settings.enabled:
        return OfflineAI()
    return _chat_ai(settings)


@lru_cache(maxsize=1)
def _chat_ai(settings: AISettings) -> OpenAIChatAI:
    # One client (and its connection pool) for as long as the settings stay the same.
    # Imported here: the SDK is loaded only when a model is configured.
    from tasks.ai.openai_chat import OpenAIChatAI

    return OpenAIChatAI(settings)


__all__ = ["AI", "CleanDecision", "OfflineAI", "default_ai"]
