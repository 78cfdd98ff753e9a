"""Publish jobs to the configured provider and receive them from every provider."""

from __future__ import annotations

from bridge.enqueue import cancel, enqueue, enqueue_many
from bridge.errors import DelayUnsupported, InvalidPayload, PublishError
from bridge.receipt import Receipt

__all__ = [
    "DelayUnsupported",
    "InvalidPayload",
    "PublishError",
    "Receipt",
    "cancel",
    "enqueue",
    "enqueue_many",
]
