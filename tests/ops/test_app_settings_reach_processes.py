"""The inbox app's own settings (the AI, digest delivery, OAuth accounts) are documented
in .env.example and reach every app process of both compose files."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from tasks.ai.settings import AISettings
from tasks.mail.delivery_settings import DeliverySettings
from tasks.mail.oauth_settings import OAuthSettings
from tests.ops.test_deployment_files import (
    APP_CASES,
    env_example_variables,
    service,
)

APP_SETTINGS: list[type[BaseSettings]] = [AISettings, DeliverySettings, OAuthSettings]
APP_VARIABLES = sorted(name.upper() for model in APP_SETTINGS for name in model.model_fields)


@pytest.mark.parametrize("variable", APP_VARIABLES)
def test_app_settings_variable_is_in_env_example(variable: str) -> None:
    assert variable in env_example_variables()


@pytest.mark.parametrize(("file", "name"), APP_CASES)
def test_app_process_reads_the_env_file_when_there_is_one(file: str, name: str) -> None:
    env_files = service(file, name).get("env_file")

    assert env_files == [{"path": ".env", "required": False}]
