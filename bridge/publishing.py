"""The enqueue API: validate once, then publish along the configured provider chain."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

import tasks  # noqa: F401  (registers every job, so names resolve)
from bridge.errors import AllProvidersFailed, InvalidPayload, PublishError
from bridge.publishers import Message, Publisher, make_publisher
from bridge.receipt import Receipt
from config import Provider, Settings, get_settings, resolve_chain
from tasks.payload import Payload, describe_validation_error
from tasks.registry import JobSpec, job_for

log = logging.getLogger("jobbridge.enqueue")

JobRef = JobSpec[Any] | str
PayloadIn = Payload | Mapping[str, Any]

_publishers: dict[tuple[int, Provider], tuple[Settings, Publisher]] = {}


def publisher(provider: Provider, settings: Settings) -> Publisher:
    """One publisher per (settings, provider), so clients and connections are reused."""
    key = (id(settings), provider)
    cached = _publishers.get(key)
    if cached is None or cached[0] is not settings:
        cached = (settings, make_publisher(provider, settings))
        _publishers[key] = cached
    return cached[1]


def _spec(job: JobRef) -> JobSpec[Any]:
    return job_for(job) if isinstance(job, str) else job


def prepare(
    job: JobRef, payload: PayloadIn, *, at: datetime | None = None, dedup_id: str | None = None
) -> Message:
    """Validate and serialise; raise InvalidPayload (naming the field) before anything is sent."""
    spec = _spec(job)
    if at is not None:
        if at.tzinfo is None:
            raise ValueError("`at` must be timezone-aware (UTC); a naive time is ambiguous")
        if not spec.delayable:
            raise ValueError(f"{spec.event} is not delayable; declare it with delayable=True")
    try:
        model = spec.payload.model_validate(
            payload.to_wire() if isinstance(payload, Payload) else dict(payload)
        )
    except ValidationError as error:
        raise InvalidPayload(f"{spec.event}: {describe_validation_error(error)}") from None
    if at is not None:
        model = model.model_copy(update={"scheduled_for": at})
    return Message(spec, model.to_wire(), at, dedup_id)


def _publish(messages: Sequence[Message], settings: Settings | None) -> list[Receipt]:
    settings = settings or get_settings()
    chain = resolve_chain(settings)
    errors: list[PublishError] = []
    for provider in chain.providers:
        try:
            receipts = publisher(provider, settings).publish(messages)
        except PublishError as error:
            errors.append(error)
            log.warning("publish to %s failed: %s", provider.value, error)
            continue
        if errors:
            log.warning("failed over to %s after: %s", provider.value, errors)
        return receipts
    if len(errors) == 1:
        raise errors[0]
    raise AllProvidersFailed(errors)


def enqueue(
    job: JobRef,
    payload: PayloadIn,
    *,
    at: datetime | None = None,
    dedup_id: str | None = None,
    settings: Settings | None = None,
) -> Receipt:
    """Publish one job; returns which provider took it. Raises PublishError if none did."""
    return _publish([prepare(job, payload, at=at, dedup_id=dedup_id)], settings)[0]


def enqueue_many(
    job: JobRef,
    payloads: Sequence[PayloadIn],
    *,
    at: datetime | None = None,
    dedup_ids: Sequence[str | None] | None = None,
    settings: Settings | None = None,
) -> list[Receipt]:
    """Publish many jobs of one kind in as few requests as the provider allows."""
    ids = list(dedup_ids) if dedup_ids is not None else [None] * len(payloads)
    if len(ids) != len(payloads):
        raise ValueError("dedup_ids must have one entry per payload")
    messages = [prepare(job, p, at=at, dedup_id=d) for p, d in zip(payloads, ids, strict=True)]
    return _publish(messages, settings) if messages else []


def cancel(receipt: Receipt, settings: Settings | None = None) -> bool:
    """Ask the provider that took the job to drop it (best effort)."""
    return publisher(receipt.provider, settings or get_settings()).cancel(receipt)
