"""The delivery ledger remembers final outcomes in Redis when there is one, else the database."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.store import ledger as deliveries
from bridge.store import redis_store
from bridge.store.db import session_scope
from bridge.web.factory import create_app
from tasks import scheduled_actions
from tasks.models import ProcessedDelivery, utcnow
from tests.support import env


@pytest.fixture(params=["redis", "database"])
def backend(request: pytest.FixtureRequest, configure: Any) -> str:
    if request.param == "database":
        configure(REDIS_URL=None)
    return str(request.param)


JOB = "inbox-zero/x.y"


def test_recorded_delivery_is_remembered(backend: str) -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    assert deliveries.already_processed("qstash", delivery_id, JOB) is False
    deliveries.record_processed("qstash", delivery_id, JOB, "done")
    assert deliveries.already_processed("qstash", delivery_id, JOB) is True
    assert deliveries.already_processed("http", delivery_id, JOB) is False  # per provider


def test_a_delivery_id_recorded_for_one_job_does_not_settle_another(backend: str) -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    deliveries.record_processed("http", delivery_id, JOB, "failed")

    assert deliveries.already_processed("http", delivery_id, "inbox-zero/other.job") is False
    deliveries.record_processed("http", delivery_id, "inbox-zero/other.job", "done")
    assert deliveries.already_processed("http", delivery_id, JOB) is True


def test_recording_twice_is_harmless(backend: str) -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    deliveries.record_processed("qstash", delivery_id, JOB, "done")
    deliveries.record_processed("qstash", delivery_id, JOB, "done")
    assert deliveries.already_processed("qstash", delivery_id, JOB) is True


def test_redis_entries_live_under_the_prefix_and_expire() -> None:
    delivery_id = f"msg_{uuid.uuid4().hex}"
    deliveries.record_processed("qstash", delivery_id, JOB, "failed")
    key = f"{os.environ['REDIS_KEY_PREFIX']}jobbridge:delivered:qstash:{JOB}:{delivery_id}"
    ttl = redis_store.client().ttl(key)
    assert deliveries.RETENTION.total_seconds() - 60 < ttl <= deliveries.RETENTION.total_seconds()


def test_sweep_prunes_old_database_entries(configure: Any) -> None:
    configure(REDIS_URL=None)
    deliveries.record_processed("qstash", "old", JOB, "done")
    deliveries.record_processed("qstash", "new", JOB, "done")
    with session_scope() as session:
        old = session.get(ProcessedDelivery, ("qstash", "old"))
        assert old is not None
        old.finished_at = utcnow() - timedelta(days=15)

    assert scheduled_actions.sweep().pruned_deliveries == 1
    assert [deliveries.already_processed("qstash", i, JOB) for i in ("old", "new")] == [
        False,
        True,
    ]


def test_a_delivery_id_reused_for_another_job_runs_that_job(backend: str, configure: Any) -> None:
    settings = configure(**({"REDIS_URL": None} if backend == "database" else {}))
    headers = {"x-api-key": env.INTERNAL_API_KEY, "x-jobbridge-delivery-id": uuid.uuid4().hex}
    with TestClient(create_app(settings), headers=headers) as web:
        digest = web.post("/api/resend/digest", json={"emailAccountId": "nobody"})
        execute = web.post("/api/scheduled-actions/execute", json={"scheduledActionId": "zz"})
        again = web.post("/api/resend/digest", json={"emailAccountId": "nobody"})

    assert digest.json()["outcome"] == "failed"  # recorded in the ledger
    assert execute.json()["outcome"] == "skipped"  # run: no such action
    assert again.json()["outcome"] == "duplicate"
