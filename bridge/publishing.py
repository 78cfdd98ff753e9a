"""The enqueue API: typed payloads, published along the configured provider chain.

`enqueue(spec, payload)` takes the job's own payload model, so mypy checks that a
caller sends each job what it declared. Wire data (a JSON object) becomes a payload
only at the edges, through `validate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bridge import metrics
from bridge.celery.publisher import CeleryPublisher
from bridge.errors import AllProvidersFailed, InvalidPayload, PublishError
from bridge.http.publisher import HttpPublisher
from bridge.inngest.publisher import InngestPublisher
from bridge.payload import describe_validation_error
from bridge.publisher import Message, Publisher
from bridge.qstash.publisher import QStashPublisher
from bridge.receipt import Receipt
from bridge.registry import JobSpec, P
from config import Provider, Settings, get_settings, resolve_chain

log = logging.getLogger("jobbridge.enqueue")

# One row per provider (config/providers.py says when each is configured).
PUBLISHERS: dict[Provider, Callable[[Settings], Publisher]] = {
    Provider.INNGEST: InngestPublisher,
    Provider.QSTASH: QStashPublisher,
    Provider.CELERY: CeleryPublisher,
    Provider.HTTP: HttpPublisher,
}

_publishers: dict[tuple[int, Provider], tuple[Settings, Publisher]] = {}


def publisher(provider: Provider, settings: Settings) -> Publisher:
    """One publisher per (settings, provider), so clients and connections are reused."""
    key = (id(settings), provider)
    cached = _publishers.get(key)
    if cached is None or cached[0] is not settings:
        cached = (settings, PUBLISHERS[provider](settings))
        _publishers[key] = cached
    return cached[1]


def validate(spec: JobSpec[P], data: Mapping[str, Any]) -> P:
    """Wire data as the job's payload; InvalidPayload names each bad field."""
    try:
        return spec.payload.model_validate(dict(data))
    except ValidationError as error:
        raise InvalidPayload(f"{spec.event}: {describe_validation_error(error)}") from None


def prepare(
    spec: JobSpec[P], payload: P, *, at: datetime | None = None, dedup_id: str | None = None
) -> Message:
    """The message to publish; raise before anything is sent when `at` cannot apply."""
    if not isinstance(payload, spec.payload):
        raise TypeError(f"{spec.event} takes {spec.payload.__name__}, not {type(payload).__name__}")
    if at is not None:
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware (UTC); a naive time is ambiguous")
        if not spec.delayable:
            raise ValueError(f"{spec.event} is not delayable; declare it with delayable=True")
        payload = payload.model_copy(update={"scheduled_for": at})
    return Message(spec, payload.to_wire(), at, dedup_id)


def _publish(messages: Sequence[Message], settings: Settings | None) -> list[Receipt]:
    settings = settings or get_settings()
    chain = resolve_chain(settings)
    errors: list[PublishError] = []
    job = messages[0].spec.name  # one job kind per publish (enqueue, enqueue_many)
    failed: Provider | None = None
    for provider in chain.providers:
        if failed is not None:
            metrics.FAILOVERS.labels(failed.value, provider.value).inc()
        try:
            receipts = publisher(provider, settings).publish(messages)
        except PublishError as error:
            errors.append(error)
            failed = provider
            metrics.PUBLISH_FAILURES.labels(job, provider.value).inc(len(messages))
            log.warning("publish to %s failed: %s", provider.value, error)
            continue
        metrics.PUBLISHES.labels(job, provider.value).inc(len(messages))
        if errors:
            log.warning("failed over to %s after: %s", provider.value, errors)
        return receipts
    if len(errors) == 1:
        raise errors[0]
    raise AllProvidersFailed(errors)


def enqueue(
    spec: JobSpec[P],
    payload: P,
    *,
    at: datetime | None = None,
    dedup_id: str | None = None,
    settings: Settings | None = None,
) -> Receipt:
    """Publish one job; returns which provider took it. Raises PublishError if none did."""
    return _publish([prepare(spec, payload, at=at, dedup_id=dedup_id)], settings)[0]


def enqueue_many(
    spec: JobSpec[P],
    payloads: Sequence[P],
    *,
    at: datetime | None = None,
    dedup_ids: Sequence[str | None] | None = None,
    settings: Settings | None = None,
) -> list[Receipt]:
    """Publish many jobs of one kind in as few requests as the provider allows."""
    ids = list(dedup_ids) if dedup_ids is not None else [None] * len(payloads)
    if len(ids) != len(payloads):
        raise ValueError("dedup_ids must have one entry per payload")
    messages = [prepare(spec, p, at=at, dedup_id=d) for p, d in zip(payloads, ids, strict=True)]
    return _publish(messages, settings) if messages else []


def cancel(
    receipt: Receipt,
    spec: JobSpec[Any],
    data: dict[str, Any],
    settings: Settings | None = None,
) -> bool:
    """Ask the provider that took the job to drop it (best effort). `data` is the job's
    wire data, or at least its `cancel_key` field (Inngest cancels by that value)."""
    message = Message(spec, data, None, None)
    return publisher(receipt.provider, settings or get_settings()).cancel(receipt, message)
