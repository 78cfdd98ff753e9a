"""Celery: `send_task` within the ETA horizon; further jobs wait in the database.

See bridge/celery/deferred.py for why (kombu #337 on Redis, consumer_timeout on
RabbitMQ) and how they are released.

Every message is built by `send_task`, so it is exactly what a plain `apply_async`
would publish (task id, ETA, headers, the `task-sent` event Flower reads). What
differs is when it reaches the broker: inside kombu's `Producer.batch()` the Redis
transport buffers each message's LPUSH and PUBLISH in one pipeline and sends a chunk
of messages in one round trip, instead of two round trips per message. Transports
without batch support (RabbitMQ, where each publish waits for its confirm, and the
embedded filesystem broker) publish each message as it is built.

A job with a `batch_body` has the deliveries of one call that share a key value sent
as messages of its batch task, BATCH_MAX each (bridge/celery/batches.py); each of their
receipts names its batch's task id.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kombu import exceptions as kombu_exceptions

from bridge.celery import deferred
from bridge.celery.batches import BATCH_MAX, batch_task_name
from bridge.celery.config import BROKER_TIMEOUT_SECONDS
from bridge.celery.producer import producer_app
from bridge.errors import PublishError
from bridge.publisher import Message
from bridge.receipt import Receipt
from bridge.store.columns import utcnow
from config import Provider, Settings

DEFERRED_PREFIX = "deferred:"
# Fail fast when the broker is down, so failover can move on.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 1.0}
# Messages per pipeline: bounds client memory and what one failed flush sends again.
CHUNK_MESSAGES = 500
# kombu flushes a batch early once it holds this many Redis commands. A message costs
# an LPUSH and a task-sent PUBLISH (plus a PEXPIRE per priority if its queue expires),
# so this keeps a chunk in one flush.
BATCH_MAX_COMMANDS = CHUNK_MESSAGES * 8
# kombu >= 5.7 raises this when a flushed pipeline failed: which of its commands ran is
# unknown. Older kombu has no batches, so nothing can raise it there.
_BATCH_FAILED: type[BaseException] = getattr(
    kombu_exceptions, "BatchPublishError", type("NoBatchPublishError", (Exception,), {})
)


@dataclass(frozen=True)
class _Outgoing:
    task: str
    kwargs: dict[str, Any]
    task_id: str
    eta: datetime | None


class CeleryPublisher:
    provider = Provider.CELERY

    def __init__(self, settings: Settings) -> None:
        self._horizon = timedelta(seconds=settings.celery_eta_horizon_seconds)
        self._app = producer_app(settings)

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        now = utcnow()
        receipts: list[Receipt] = []
        outgoing: list[_Outgoing] = []
        batches: dict[tuple[str, str], list[int]] = {}  # (event, key value) -> indexes
        try:
            for message in messages:
                task_id = message.dedup_id or uuid.uuid4().hex
                if message.at is not None and message.at - now > self._horizon:
                    fresh = deferred.defer(message.spec.event, message.data, message.at, task_id)
                    receipts.append(Receipt(self.provider, DEFERRED_PREFIX + task_id, not fresh))
                    continue
                if message.at is None and message.spec.batch_body is not None:
                    batches.setdefault(_batch_key(message), []).append(len(receipts))
                    receipts.append(Receipt(self.provider, ""))  # its batch's id, below
                    continue
                eta = message.at if message.at is not None and message.at > now else None
                outgoing.append(_Outgoing(message.spec.event, _one(message), task_id, eta))
                receipts.append(Receipt(self.provider, task_id))
            for indexes in batches.values():
                for start in range(0, len(indexes), BATCH_MAX):
                    part = indexes[start : start + BATCH_MAX]
                    outgoing.append(_batch_of([messages[i] for i in part], receipts, part))
            if outgoing:
                # One connection for the whole call. An error raised in this block makes
                # kombu replace the pooled connection: a RabbitMQ confirm that timed out
                # may still arrive on it, and would be taken for the next message's.
                with self._app.producer_or_acquire() as producer:
                    for start in range(0, len(outgoing), CHUNK_MESSAGES):
                        _send_chunk(self._app, producer, outgoing[start : start + CHUNK_MESSAGES])
        except Exception as error:
            raise PublishError(self.provider, f"broker refused or unreachable: {error}") from error
        return receipts

    def cancel(self, receipt: Receipt, message: Message) -> bool:
        if receipt.id.startswith(DEFERRED_PREFIX):
            return deferred.discard(receipt.id.removeprefix(DEFERRED_PREFIX))
        self._app.control.revoke(receipt.id)
        return True


def _one(message: Message) -> dict[str, Any]:
    return {"payload": message.data}


def _batch_key(message: Message) -> tuple[str, str]:
    value = message.data.get(message.spec.key)
    return message.spec.event, repr(value)


def _batch_of(messages: list[Message], receipts: list[Receipt], indexes: list[int]) -> _Outgoing:
    """One message of the job's batch task for `messages` (one alone goes as itself),
    its id written into their receipts."""
    if len(messages) == 1:
        task_id = messages[0].dedup_id or uuid.uuid4().hex
        receipts[indexes[0]] = Receipt(Provider.CELERY, task_id)
        return _Outgoing(messages[0].spec.event, _one(messages[0]), task_id, None)
    ids = [message.dedup_id for message in messages]  # each its own, as if alone
    task_id = _batch_id(ids)
    for index in indexes:
        receipts[index] = Receipt(Provider.CELERY, task_id)
    kwargs = {"payloads": [message.data for message in messages], "ids": ids}
    return _Outgoing(batch_task_name(messages[0].spec), kwargs, task_id, None)


def _batch_id(dedup_ids: Sequence[str | None]) -> str:
    """A batch's task id: named after its first payload, found by it in Flower, and
    told apart by a digest of every member's dedup id, so that two batches share an id
    only when they carry the same deliveries (a page listed again after its folder
    changed starts with the same message but holds others). A batch with a member
    without a dedup id is a new one each time."""
    if not all(dedup_ids):
        return f"batch-{uuid.uuid4().hex}"
    digest = hashlib.blake2b(json.dumps(dedup_ids).encode(), digest_size=6).hexdigest()
    return f"{dedup_ids[0]}+{len(dedup_ids) - 1}.{digest}"


def _send_chunk(app: Any, producer: Any, chunk: Sequence[_Outgoing]) -> None:
    """Publish one chunk in one flush, retried on a failed flush like a single publish.

    A flush that failed may have delivered part of the chunk, so a retry can deliver a
    message twice, under the same task id: harmless, since jobs are idempotent (the
    retry policy of a plain apply_async has the same property).
    """
    attempt = 0
    while True:
        try:
            with _batch(producer):
                for item in chunk:
                    app.send_task(
                        item.task,
                        kwargs=item.kwargs,
                        task_id=item.task_id,
                        eta=item.eta,
                        producer=producer,
                        # Covers what is not buffered: declaring the queue on a new channel.
                        retry=True,
                        retry_policy=RETRY_POLICY,
                        # RabbitMQ: bounded waits for the socket and the confirm (Redis has
                        # its socket timeout in the transport options).
                        timeout=BROKER_TIMEOUT_SECONDS,
                        confirm_timeout=BROKER_TIMEOUT_SECONDS,
                    )
            return
        except _BATCH_FAILED:
            if attempt >= RETRY_POLICY["max_retries"]:
                raise
            time.sleep(
                min(
                    RETRY_POLICY["interval_start"] + RETRY_POLICY["interval_step"] * attempt,
                    RETRY_POLICY["interval_max"],
                )
            )
            attempt += 1


def _batch(producer: Any) -> AbstractContextManager[object]:
    """kombu's publish batch: flushed on a clean exit, its unflushed rest dropped on error."""
    batch = getattr(producer, "batch", None)
    # kombu before 5.7 has no publish batches: each message goes out as it is built.
    return nullcontext() if batch is None else batch(max_size=BATCH_MAX_COMMANDS)
