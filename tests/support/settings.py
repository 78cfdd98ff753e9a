"""Helpers for the tests of reading settings (tests/bridge/test_settings*.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings


@pytest.fixture
def no_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings read `.env` from the working directory: run where there is none."""
    monkeypatch.chdir(tmp_path)


def config_error(**overrides: object) -> str:
    """The ConfigError's text when the settings are read with these overrides."""
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    return str(caught.value)
