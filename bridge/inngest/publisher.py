"""Inngest: one `send_sync` per batch of up to 5,000 events; the dedup id is the event id."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta

import inngest

from bridge.errors import DelayUnsupported, PublishError
from bridge.inngest.client import make_inngest_client
from bridge.publisher import Message
from bridge.receipt import Receipt
from bridge.store.columns import utcnow
from config import Provider, Settings

MAX_EVENTS_PER_REQUEST = 5_000
MAX_EVENT_BYTES = 3 * 1024 * 1024  # self-hosted limit per event
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # keep one request reasonable however big events are
MAX_SLEEP = timedelta(days=366)  # step.sleep_until's limit


class InngestPublisher:
    provider = Provider.INNGEST

    def __init__(self, settings: Settings) -> None:
        self._client = make_inngest_client(settings)

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        latest = utcnow() + MAX_SLEEP
        for message in messages:
            if message.at is not None and message.at > latest:
                raise DelayUnsupported(self.provider, "Inngest sleeps at most 366 days")
        receipts: list[Receipt] = []
        for batch in _batches(messages):
            events = [
                inngest.Event(name=m.spec.event, data=m.data, id=m.dedup_id or "") for m in batch
            ]
            try:
                ids = self._client.send_sync(events)
            except Exception as error:
                raise PublishError(
                    self.provider, f"event API refused or unreachable: {error}"
                ) from error
            if len(ids) != len(batch):
                raise PublishError(self.provider, f"sent {len(batch)} events, got {len(ids)} ids")
            receipts.extend(Receipt(self.provider, str(event_id)) for event_id in ids)
        return receipts

    def cancel(self, receipt: Receipt, message: Message) -> bool:
        """A cancel event naming the job's `cancel_key` value: the job's function cancels
        the runs whose event carries the same value (bridge.inngest.functions). Inngest
        has no cancel by event id."""
        spec = message.spec
        if spec.cancel_event is None or spec.cancel_key is None:
            return False
        value = message.data[spec.cancel_key]
        event = inngest.Event(
            name=spec.cancel_event, data={spec.cancel_key: value}, id=f"cancel-{receipt.id}"
        )
        try:
            self._client.send_sync([event])
        except Exception as error:
            raise PublishError(self.provider, f"cancel event refused: {error}") from error
        return True


def _batches(messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
    start, size = 0, 0
    for index, message in enumerate(messages):
        event_bytes = len(json.dumps(message.data, separators=(",", ":"))) + 200
        if event_bytes > MAX_EVENT_BYTES:
            raise PublishError(
                Provider.INNGEST,
                f"{message.spec.event} payload is {event_bytes} bytes; limit {MAX_EVENT_BYTES}",
                permanent=True,
            )
        if index - start == MAX_EVENTS_PER_REQUEST or size + event_bytes > MAX_REQUEST_BYTES:
            yield messages[start:index]
            start, size = index, 0
        size += event_bytes
    if start < len(messages):
        yield messages[start:]
