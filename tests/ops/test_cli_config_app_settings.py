"""`jobbridge config` also prints the app's own settings (the AI, digest delivery, OAuth
accounts), with every secret reduced to its length."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tests.ops.test_cli_config import (
    Configure,
    run_config,
    setting_value,
    wide_console_without_dotenv,
)

__all__ = ["wide_console_without_dotenv"]  # the autouse fixture, for this module too

KEY = Fernet.generate_key().decode()


def test_config_prints_the_apps_settings(configure: Configure) -> None:
    configure(AI_MODEL="llama3.1", AI_BASE_URL="http://localhost:11434/v1")

    output = run_config().output

    assert setting_value(output, "AI_MODEL") == "llama3.1"
    assert setting_value(output, "MICROSOFT_TENANT") == "common"


def test_config_masks_the_apps_secrets_entirely(configure: Configure) -> None:
    configure(TOKEN_ENCRYPTION_KEY=KEY, SMTP_URL="smtp://ana:hunter2-pw@mail.example.com:587")

    output = run_config().output

    assert setting_value(output, "TOKEN_ENCRYPTION_KEY") == f"set ({len(KEY)} chars)"
    assert KEY[:8] not in output
    assert "hunter2" not in output


def test_config_names_a_bad_app_variable_and_exits_2(configure: Configure) -> None:
    configure(TOKEN_ENCRYPTION_KEY="short")

    result = run_config()

    assert result.exit_code == 2
    assert "TOKEN_ENCRYPTION_KEY" in result.output


def test_config_names_a_flower_login_that_jobbridge_dev_would_refuse(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "x%%bad")

    result = run_config()

    assert result.exit_code == 2
    assert "FLOWER_BASIC_AUTH: must be user:password" in result.output
    assert "x%%bad" not in result.output
