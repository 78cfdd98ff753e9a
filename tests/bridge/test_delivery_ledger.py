"""The delivery ledger remembers final outcomes in Redis when there is one, else the database."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import pytest

from bridge.store import ledger as deliveries
from bridge.store import redis_store
from bridge.store.db import session_scope
from tasks import scheduled_actions
from tasks.models import ProcessedDelivery, utcnow


@pytest.fixture(params=["redis", "database"])
def backend(request: pytest.FixtureRequest, configure: Any) -> str:
    if request.param == "database":
        configure(REDIS_URL=None)
    return str(request.param)


def test_recorded_delivery_is_remembered(backend: str) -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    assert deliveries.already_processed("qstash", delivery_id) is False
    deliveries.record_processed("qstash", delivery_id, "inbox-zero/x.y", "done")
    assert deliveries.already_processed("qstash", delivery_id) is True
    assert deliveries.already_processed("http", delivery_id) is False  # per provider


def test_recording_twice_is_harmless(backend: str) -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    deliveries.record_processed("qstash", delivery_id, "inbox-zero/x.y", "done")
    deliveries.record_processed("qstash", delivery_id, "inbox-zero/x.y", "done")
    assert deliveries.already_processed("qstash", delivery_id) is True


def test_redis_entries_live_under_the_prefix_and_expire() -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    deliveries.record_processed("qstash", delivery_id, "inbox-zero/x.y", "failed")
    key = f"{os.environ['REDIS_KEY_PREFIX']}jobbridge:delivered:qstash:{delivery_id}"
    ttl = redis_store.client().ttl(key)
    assert deliveries.RETENTION.total_seconds() - 60 < ttl <= deliveries.RETENTION.total_seconds()


def test_sweep_prunes_old_database_entries(configure: Any) -> None:
    configure(REDIS_URL=None)
    deliveries.record_processed("qstash", "old", "inbox-zero/x.y", "done")
    deliveries.record_processed("qstash", "new", "inbox-zero/x.y", "done")
    with session_scope() as session:
        session.get(ProcessedDelivery, ("qstash", "old")).finished_at = utcnow() - timedelta(
            days=15
        )

    assert scheduled_actions.sweep().pruned_deliveries == 1
    assert [deliveries.already_processed("qstash", i) for i in ("old", "new")] == [False, True]
