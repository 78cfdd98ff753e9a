"""Which AI the jobs get (default_ai) from the AI_* variables, and how a bad one is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from config import ConfigError
from tasks.ai import OfflineAI, default_ai
from tasks.ai.openai_chat import OpenAIChatAI
from tasks.ai.settings import OPENAI_BASE_URL, AISettings, load_ai_settings
from tasks.retry_after import retry_after

AI_VARIABLES = [name.upper() for name in AISettings.model_fields]


@pytest.fixture(autouse=True)
def no_ai_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for variable in AI_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_without_ai_model_the_offline_rules_answer() -> None:
    assert isinstance(default_ai(), OfflineAI)


def test_with_ai_model_a_chat_model_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_MODEL", "llama3.1")
    monkeypatch.setenv("AI_BASE_URL", "http://localhost:11434/v1")

    assert isinstance(default_ai(), OpenAIChatAI)


def test_ai_api_key_alone_means_openais_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("AI_API_KEY", "sk-test")

    assert load_ai_settings().base_url == OPENAI_BASE_URL


def test_a_bad_ai_timeout_seconds_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_MODEL", "llama3.1")
    monkeypatch.setenv("AI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("AI_TIMEOUT_SECONDS", "soon")

    with pytest.raises(ConfigError, match="AI_TIMEOUT_SECONDS"):
        default_ai()


def test_a_base_url_that_is_no_url_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_MODEL", "llama3.1")
    monkeypatch.setenv("AI_BASE_URL", "localhost:11434")

    with pytest.raises(ConfigError, match="AI_BASE_URL: must be an absolute"):
        default_ai()


def test_a_key_without_a_model_asks_for_ai_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_API_KEY", "sk-test")

    with pytest.raises(ConfigError, match="AI_API_KEY is set but AI_MODEL is not"):
        default_ai()


def test_a_model_without_a_server_asks_for_a_key_or_a_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_MODEL", "gpt-4o-mini")

    with pytest.raises(ConfigError, match=r"neither AI_API_KEY nor AI_BASE_URL is: set ") as error:
        default_ai()

    assert "or unset AI_MODEL to keep the offline rules" in str(error.value)


def test_the_error_does_not_show_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_API_KEY", "sk-secret-value")

    with pytest.raises(ConfigError) as raised:
        default_ai()

    assert "sk-secret-value" not in str(raised.value)


def test_empty_variables_as_in_env_example_leave_the_ai_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("AI_MODEL", "AI_BASE_URL", "AI_API_KEY"):
        monkeypatch.setenv(variable, "")

    assert isinstance(default_ai(), OfflineAI)


# Retry-After, as servers send it ------------------------------------------------
def test_retry_after_in_seconds() -> None:
    assert retry_after({"retry-after": "12"}) == 12


def test_retry_after_ms_comes_first() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "12"}) == 1.5


def test_retry_after_as_an_http_date_is_the_wait_until_then() -> None:
    then = datetime.now(UTC) + timedelta(seconds=120)

    wait = retry_after({"retry-after": format_datetime(then, usegmt=True)})

    assert wait is not None
    assert 100 < wait <= 120


@pytest.mark.parametrize("value", ["soon", "-3", "inf"])
def test_an_unusable_retry_after_says_nothing(value: str) -> None:
    assert retry_after({"retry-after": value}) is None
