"""The publisher protocol and the message every publisher receives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bridge.receipt import Receipt
from bridge.registry import JobSpec
from config import Provider


@dataclass(frozen=True)
class Message:
    spec: JobSpec[Any]
    data: dict[str, Any]  # validated, wire form (camelCase JSON)
    at: datetime | None  # aware UTC, only for delayable jobs; None = now
    dedup_id: str | None


class Publisher(Protocol):
    provider: Provider

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        """Publish all or raise PublishError; receipts in the order of `messages`."""
        ...

    def cancel(self, receipt: Receipt, message: Message) -> bool:
        """Drop the job `receipt` names, published as `message` (its spec and data; `at`
        and `dedup_id` may be None). Best effort; False where the provider cannot."""
        ...
