"""The inbox app's registry on the shim: every job and cron is declared on it."""

from __future__ import annotations

from bridge.registry import Registry

# The replaced app's last-resort calls went to `<route>/simple`: served as aliases, so
# those still on their way during the switch are not lost.
registry = Registry(event_prefix="inbox-zero/", alias_suffixes=("/simple",))
