"""Publish jobs to the configured provider and receive them from every provider.

`enqueue`, `enqueue_many` and `cancel` load on first use: they import `tasks`, whose
Celery app reads Settings at import, and `import bridge.cli` must be able to report a
bad environment itself rather than die with a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.errors import DelayUnsupported, InvalidPayload, PublishError
from bridge.receipt import Receipt

if TYPE_CHECKING:
    from bridge.publishing import cancel, enqueue, enqueue_many

_PUBLISHING = ("cancel", "enqueue", "enqueue_many")


def __getattr__(name: str) -> Any:
    if name in _PUBLISHING:
        from bridge import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


__all__ = [
    "DelayUnsupported",
    "InvalidPayload",
    "PublishError",
    "Receipt",
    "cancel",
    "enqueue",
    "enqueue_many",
]
