"""QStash: `publish_json` to WEBHOOK_URL + the job's route; `batch_json` for many."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from qstash import QStash
from qstash.message import BatchJsonRequest, BatchResponse, PublishResponse

from bridge.errors import DelayUnsupported, PublishError
from bridge.publisher import Message
from bridge.receipt import Receipt
from bridge.store.columns import utcnow
from config import Provider, Settings

BATCH_SIZE = 100


class QStashPublisher:
    provider = Provider.QSTASH

    def __init__(self, settings: Settings) -> None:
        assert settings.qstash_token is not None and settings.webhook_url is not None
        self._client = QStash(
            settings.qstash_token.get_secret_value(), base_url=settings.qstash_url
        )
        self._webhook_url = settings.webhook_url
        self._max_delay = settings.qstash_max_delay_seconds

    def options(self, message: Message) -> dict[str, Any]:
        spec = message.spec
        options: dict[str, Any] = {
            "url": self._webhook_url + spec.route,
            "body": message.data,
            "retries": spec.retries,
            "timeout": f"{spec.timeout_seconds}s",
        }
        if message.at is not None:
            delay = (message.at - utcnow()).total_seconds()
            if delay > self._max_delay:
                raise DelayUnsupported(
                    self.provider,
                    f"{delay:.0f}s ahead is beyond QSTASH_MAX_DELAY_SECONDS={self._max_delay}",
                )
            # Whole seconds, rounded up: never deliver before the requested time.
            options["not_before"] = math.ceil(message.at.timestamp())
        if message.dedup_id:
            options["deduplication_id"] = message.dedup_id
        if spec.limited_by_key:
            control: dict[str, Any] = {"key": spec.flow_key(message.data)}
            if spec.concurrency is not None:
                control["parallelism"] = spec.concurrency
            if spec.throttle is not None:
                control["rate"] = spec.throttle.limit
                control["period"] = spec.throttle.period_seconds
            options["flow_control"] = control
        return options

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        prepared = [self.options(message) for message in messages]
        try:
            if len(prepared) == 1:
                response = self._client.message.publish_json(**prepared[0])
                assert isinstance(response, PublishResponse)  # a URL, not a URL group
                return [Receipt(self.provider, response.message_id, response.deduplicated)]
            receipts: list[Receipt] = []
            for start in range(0, len(prepared), BATCH_SIZE):
                chunk = cast("list[BatchJsonRequest]", prepared[start : start + BATCH_SIZE])
                for item in self._client.message.batch_json(chunk):
                    assert isinstance(item, BatchResponse)  # URLs, not URL groups
                    receipts.append(Receipt(self.provider, item.message_id, item.deduplicated))
            return receipts
        except Exception as error:
            raise PublishError(self.provider, f"publish failed: {error}") from error

    def cancel(self, receipt: Receipt, message: Message) -> bool:
        try:
            self._client.message.cancel(receipt.id)
        except Exception as error:
            raise PublishError(self.provider, f"cancel failed: {error}") from error
        return True
