"""Celery: `apply_async` within the ETA horizon; further jobs wait in the database.

See tasks/deferred.py for why (kombu #337) and how they are released.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from bridge.errors import PublishError
from bridge.publishers.base import Message
from bridge.receipt import Receipt
from config import Provider, Settings
from tasks import deferred
from tasks.celery_app import app
from tasks.models import utcnow

DEFERRED_PREFIX = "deferred:"
# Fail fast when the broker is down, so failover can move on.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 1.0}


class CeleryPublisher:
    provider = Provider.CELERY

    def __init__(self, settings: Settings) -> None:
        self._horizon = timedelta(seconds=settings.celery_eta_horizon_seconds)

    def publish(self, messages: Sequence[Message]) -> list[Receipt]:
        now = utcnow()
        receipts: list[Receipt] = []
        try:
            with app.producer_or_acquire() as producer:  # one connection for the whole batch
                for message in messages:
                    task_id = message.dedup_id or uuid.uuid4().hex
                    if message.at is not None and message.at - now > self._horizon:
                        fresh = deferred.defer(
                            message.spec.event, message.data, message.at, task_id
                        )
                        receipts.append(
                            Receipt(self.provider, DEFERRED_PREFIX + task_id, not fresh)
                        )
                        continue
                    message.spec.task.apply_async(
                        kwargs={"payload": message.data},
                        task_id=task_id,
                        eta=message.at if message.at is not None and message.at > now else None,
                        producer=producer,
                        retry=True,
                        retry_policy=RETRY_POLICY,
                    )
                    receipts.append(Receipt(self.provider, task_id))
        except Exception as error:
            raise PublishError(self.provider, f"broker refused or unreachable: {error}") from error
        return receipts

    def cancel(self, receipt: Receipt) -> bool:
        if receipt.id.startswith(DEFERRED_PREFIX):
            return deferred.discard(receipt.id.removeprefix(DEFERRED_PREFIX))
        app.control.revoke(receipt.id)
        return True
