"""Every environment variable jobbridge reads, typed and validated at start-up."""

from __future__ import annotations

from config.provider import Provider
from config.providers import ProviderChain, resolve_chain
from config.settings import (
    ENVIRONMENT_SOURCES,
    ConfigError,
    Settings,
    get_settings,
    load_settings,
    read_settings,
)

__all__ = [
    "ENVIRONMENT_SOURCES",
    "ConfigError",
    "Provider",
    "ProviderChain",
    "Settings",
    "get_settings",
    "load_settings",
    "read_settings",
    "resolve_chain",
]
