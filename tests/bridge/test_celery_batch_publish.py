"""enqueue_many on Celery: jobs leave in pipelined chunks and a real worker runs each once.

The publisher buffers each message's Redis commands in kombu's publish batch; these
tests check that what arrives is what a plain apply_async would have sent: one task
per job, under the job's dedup id, not before its ETA, and that a broker failure is
still a PublishError.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import redis

from bridge import PublishError, Receipt, enqueue_many
from bridge.celery import publisher as celery_publisher
from bridge.celery.publisher import CeleryPublisher
from bridge.publishing import prepare
from bridge.store.db import session_scope
from config import Provider, get_settings
from tasks.models import ActionStatus, ActionType, DeferredJob, ScheduledAction, utcnow
from tasks.scheduled_actions import (
    ExecuteScheduledAction,
    dedup_id_for,
    execute_scheduled_action,
)
from tests.conftest import Mailbox
from tests.support.actions import insert_action
from tests.support.wait import wait_for

JOBS = 30
CHUNK = 7  # several chunks, the last one short: every flush boundary is crossed


def pending_mark_read_actions(mailbox: Mailbox, count: int, due: datetime) -> list[ScheduledAction]:
    """`count` PENDING MARK_READ actions, each on a message of its own."""
    mail = mailbox.provider()
    rows = []
    for number in range(count):
        message = EmailMessage()
        message["From"] = "batch@example.test"
        message["To"] = mailbox.email
        message["Subject"] = f"Batch {number}"
        message.set_content("Mark me read.")
        key = mail.deliver(message)
        rows.append(insert_action(mailbox.account_id, ActionType.MARK_READ, key, scheduled_for=due))
    return rows


def rows_by_id(ids: list[str]) -> dict[str, ScheduledAction]:
    with session_scope() as session:
        found = session.query(ScheduledAction).filter(ScheduledAction.id.in_(ids)).all()
        return {row.id: row for row in found}


def test_enqueue_many_runs_each_job_once_under_its_dedup_id(
    mailbox: Mailbox, worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(celery_publisher, "CHUNK_MESSAGES", CHUNK)
    due = utcnow() + timedelta(seconds=1)
    rows = pending_mark_read_actions(mailbox, JOBS, due)
    dedup_ids = [dedup_id_for(row.id) for row in rows]

    receipts = enqueue_many(
        execute_scheduled_action,
        [ExecuteScheduledAction(scheduled_action_id=row.id) for row in rows],
        at=due,
        dedup_ids=dedup_ids,
    )

    assert receipts == [Receipt(Provider.CELERY, dedup_id) for dedup_id in dedup_ids]
    ids = [row.id for row in rows]

    def all_completed() -> dict[str, ScheduledAction]:
        found = rows_by_id(ids)
        done = all(row.status is ActionStatus.COMPLETED for row in found.values())
        return found if done and len(found) == JOBS else {}  # {} keeps wait_for waiting

    finished = wait_for(all_completed, timeout=60, what=f"{JOBS} actions to complete")
    # claimed_by is "<provider>:<delivery id>" and Celery's delivery id is the task id;
    # attempt 0 everywhere means no task was redelivered or retried.
    assert sorted((row.claimed_by, row.claim_attempt) for row in finished.values()) == sorted(
        (f"celery:{dedup_id}", 0) for dedup_id in dedup_ids
    )
    assert all(row.executed_at is not None and row.executed_at >= due for row in finished.values())
    mail = mailbox.provider()
    assert all(mail.get_message(row.message_id).read for row in rows)


def test_mixed_batch_keeps_order_and_defers_jobs_beyond_the_horizon() -> None:
    # The suite's horizon is 120 s: the far job waits in the database, the others go to Redis.
    far = utcnow() + timedelta(hours=3)
    messages = [
        prepare(
            execute_scheduled_action,
            ExecuteScheduledAction(scheduled_action_id=f"missing-{number}"),
            at=at,
            dedup_id=f"batch-order-{number}",
        )
        for number, at in enumerate([None, far, utcnow() + timedelta(seconds=60)])
    ]
    publisher = CeleryPublisher(get_settings())

    assert publisher.publish(messages) == [
        Receipt(Provider.CELERY, "batch-order-0"),
        Receipt(Provider.CELERY, "deferred:batch-order-1"),
        Receipt(Provider.CELERY, "batch-order-2"),
    ]
    with session_scope() as session:
        waiting = session.get(DeferredJob, "batch-order-1")
        assert waiting is not None and waiting.due_at == far
    # Deferred again under the same dedup id: kept once, reported as deduplicated.
    assert publisher.publish(messages[1:2]) == [
        Receipt(Provider.CELERY, "deferred:batch-order-1", deduplicated=True)
    ]


def test_failed_flush_is_retried_then_raises_publish_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = [ExecuteScheduledAction(scheduled_action_id="missing-x")]
    # Declare the queue on this connection first: declaring uses a pipeline too.
    enqueue_many(execute_scheduled_action, job, dedup_ids=["batch-before-outage"])
    flushes: list[list[str]] = []

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        flushes.append([str(command[0]) for command, _ in self.command_stack])
        raise redis.exceptions.ConnectionError("Connection refused (simulated)")

    monkeypatch.setattr(redis.client.Pipeline, "execute", refuse)
    with pytest.raises(PublishError) as raised:
        enqueue_many(execute_scheduled_action, job, dedup_ids=["batch-refused"])

    assert raised.value.provider is Provider.CELERY
    # The first flush and the retry policy's two retries, each the LPUSH and its event.
    assert flushes == [["LPUSH", "PUBLISH"]] * 3
