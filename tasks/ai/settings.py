"""The AI's environment variables: which OpenAI-compatible server answers, if any.

The AI is the inbox app's concern, so its settings live here rather than in config/;
they are read when `default_ai()` is called, never at import. The AI is on when
AI_MODEL is set; without it the offline rules answer, as they do by default.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from config import ENVIRONMENT_SOURCES, read_settings
from config.environment import EnvironmentSettings

OPENAI_BASE_URL = "https://api.openai.com/v1"


class AISettings(EnvironmentSettings):
    """AI_* variables; frozen (hence hashable) so one client can serve equal settings."""

    # Read like config's Settings: the environment first, then .env in the working folder.
    model_config = SettingsConfigDict(**ENVIRONMENT_SOURCES, frozen=True)

    # The server's OpenAI-compatible base URL, the part before /chat/completions.
    ai_base_url: str | None = None
    ai_api_key: SecretStr | None = None
    ai_model: str | None = None
    # One request, the whole of it; a slower server's answer is retried later.
    ai_timeout_seconds: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)
    # Characters of mail (and of the user's instructions) one prompt may carry.
    ai_max_input_chars: int = Field(default=6000, ge=500, le=1_000_000)

    @field_validator("ai_base_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "must be an absolute http:// or https:// URL, e.g. http://localhost:11434/v1"
            )
        return value.rstrip("/")

    @field_validator("ai_model")
    @classmethod
    def _model_without_whitespace(cls, value: str | None) -> str | None:
        # A blank AI_MODEL is already unset (EnvironmentSettings): the offline rules answer.
        return None if value is None else value.strip()

    @model_validator(mode="after")
    def _a_model_and_a_server_go_together(self) -> AISettings:
        if self.ai_model is None and (self.ai_base_url or self.ai_api_key):
            given = "AI_BASE_URL" if self.ai_base_url else "AI_API_KEY"
            raise ValueError(
                f"{given} is set but AI_MODEL is not: name the model to ask (e.g. "
                f"gpt-4o-mini, or llama3.1 on Ollama), or unset {given} to keep the "
                "offline rules"
            )
        if self.ai_model is not None and not (self.ai_base_url or self.ai_api_key):
            raise ValueError(
                "AI_MODEL is set but neither AI_API_KEY nor AI_BASE_URL is: set AI_API_KEY "
                "for OpenAI, or AI_BASE_URL for another server (e.g. "
                "http://localhost:11434/v1 for Ollama), or unset AI_MODEL to keep the "
                "offline rules"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.ai_model is not None

    @property
    def base_url(self) -> str:
        """The server to ask: AI_BASE_URL, else OpenAI's (AI_API_KEY alone means OpenAI)."""
        return self.ai_base_url or OPENAI_BASE_URL


def load_ai_settings(**overrides: object) -> AISettings:
    """Read the AI_* variables now; ConfigError naming each bad one."""
    return read_settings(AISettings, **overrides)
