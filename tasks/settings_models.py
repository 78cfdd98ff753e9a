"""The inbox app's own settings, beside the shim's: `jobbridge config` prints them."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from tasks.ai.settings import AISettings
from tasks.mail.delivery_settings import DeliverySettings
from tasks.mail.oauth_settings import OAuthSettings

settings_models: tuple[type[BaseSettings], ...] = (AISettings, DeliverySettings, OAuthSettings)
