"""Every environment variable jobbridge reads, typed and validated at start-up."""

from __future__ import annotations

from config.providers import Provider, ProviderChain, resolve_chain
from config.settings import ConfigError, Settings, get_settings, load_settings

__all__ = [
    "ConfigError",
    "Provider",
    "ProviderChain",
    "Settings",
    "get_settings",
    "load_settings",
    "resolve_chain",
]
