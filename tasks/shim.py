"""The inbox app's registry on the shim: every job and cron is declared on it."""

from __future__ import annotations

from bridge.registry import Registry

registry = Registry(event_prefix="inbox-zero/")
