"""How each provider adapter translates outcomes and uses its provider's features."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest

from bridge import cancel, enqueue, enqueue_many
from bridge.celery import deferred
from bridge.celery.tasks import JobFailed
from config import Provider
from tasks import JOBS, scheduled_actions
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.conftest import Mailbox
from tests.support import env
from tests.support.actions import insert_action
from tests.support.celery_tasks import celery_task, traceback_text
from tests.support.fake_inngest import APP_ID, FakeInngest, run_function
from tests.support.fake_qstash import QueuedMessage, deliver
from tests.support.wait import wait_for, wait_until_time
from tests.support.wire import job, wire

JOB = "scheduled-action.execute"
ROUTE = "/api/scheduled-actions/execute"


def action(action_id: str) -> ScheduledAction:
    row = scheduled_actions.get(action_id)
    assert row is not None
    return row


def qstash_message_for(action_id: str) -> QueuedMessage:
    body = json.dumps({"scheduledActionId": action_id}).encode()
    return QueuedMessage(f"msg_{uuid.uuid4().hex}", env.WEBHOOK_URL + ROUTE, body, {})


# QStash ---------------------------------------------------------------------------


def test_qstash_publish_carries_retries_timeout_and_dedup(fake_qstash: Any) -> None:
    enqueue(*wire(JOB, {"scheduledActionId": "a1"}), dedup_id="scheduled-action-a1")
    (message,) = fake_qstash.messages
    assert message.url == env.WEBHOOK_URL + ROUTE
    assert message.headers["upstash-retries"] == "3"
    assert message.headers["upstash-timeout"] == "300s"
    assert message.headers["upstash-deduplication-id"] == "scheduled-action-a1"


def test_duplicate_dedup_id_is_reported_as_deduplicated(fake_qstash: Any) -> None:
    first = enqueue(*wire(JOB, {"scheduledActionId": "a1"}), dedup_id="same")
    second = enqueue(*wire(JOB, {"scheduledActionId": "a1"}), dedup_id="same")
    assert (first.deduplicated, second.deduplicated, second.id) == (False, True, first.id)


def test_cancelling_a_qstash_scheduled_action_cancels_its_message(
    fake_qstash: Any, mailbox: Mailbox
) -> None:
    row = scheduled_actions.schedule(
        email_account_id=mailbox.account_id,
        action_type=ActionType.ARCHIVE,
        message_id=mailbox.keys[0],
        thread_id=mailbox.keys[0],
        scheduled_for=utcnow() + timedelta(hours=1),
    )
    assert scheduled_actions.cancel(row.id) is True
    assert fake_qstash.cancelled == [fake_qstash.messages[0].message_id]
    assert action(row.id).status is ActionStatus.CANCELLED


def test_unknown_account_answers_489_to_qstash(web: str, mailbox: Mailbox) -> None:
    row = insert_action("no-such-account", ActionType.ARCHIVE, mailbox.keys[0])
    response = deliver(qstash_message_for(row.id), web)
    assert response.status_code == 489
    assert response.headers["upstash-nonretryable-error"] == "true"
    assert "unknown email account" in response.json()["error"]


def test_early_qstash_delivery_answers_503_with_retry_after(web: str, mailbox: Mailbox) -> None:
    due = utcnow() + timedelta(seconds=90)
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0], scheduled_for=due)
    response = deliver(qstash_message_for(row.id), web)
    assert response.status_code == 503
    assert 85 <= int(response.headers["retry-after"]) <= 91
    assert action(row.id).status is ActionStatus.PENDING


# Inngest --------------------------------------------------------------------------


def test_inngest_publishes_in_batches_of_five_thousand(fake_inngest: Any) -> None:
    payloads = [{"scheduledActionId": f"a{i}"} for i in range(12_001)]
    receipts = enqueue_many(job(JOB), [wire(JOB, p)[1] for p in payloads])
    assert fake_inngest.requests == 3
    assert len(fake_inngest.events) == len(receipts) == 12_001
    assert {r.provider for r in receipts} == {Provider.INNGEST}


def test_inngest_unknown_account_is_not_retried(web: str, mailbox: Mailbox) -> None:
    row = insert_action("no-such-account", ActionType.ARCHIVE, mailbox.keys[0])
    event = {"name": "inbox-zero/scheduled-action.execute", "data": {"scheduledActionId": row.id}}
    run = run_function(web, "scheduled-action-execute", event)
    assert (run.status, run.no_retry, run.attempts) == (500, True, 1)
    assert action(row.id).status is ActionStatus.FAILED


def test_inngest_early_delivery_asks_to_retry_after_the_due_time(
    web: str, mailbox: Mailbox
) -> None:
    due = utcnow() + timedelta(minutes=5)
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0], scheduled_for=due)
    event = {"name": "inbox-zero/scheduled-action.execute", "data": {"scheduledActionId": row.id}}
    body = FakeInngest.request_body(event, "01RUNEARLY", 0, {}, [])
    response = FakeInngest.post(web, "scheduled-action-execute", body)
    assert response.status_code == 500
    assert response.headers.get("x-inngest-no-retry") != "true"
    assert response.headers["retry-after"].startswith(str(due.year))


def test_inngest_cron_function_runs_the_sweep(web: str) -> None:
    event = {"name": "inngest/scheduled.timer", "data": {"cron": "* * * * *"}}
    run = run_function(web, "scheduled-actions-sweep", event)
    assert run.status == 200
    assert set(run.output) == {"reclaimed", "enqueued", "pruned_deliveries", "ran", "failed"}


def test_inngest_cron_function_refuses_the_tick_of_another_schedule(web: str) -> None:
    hourly = {"name": "inngest/scheduled.timer", "data": {"cron": "0 * * * *"}}

    run = run_function(web, "scheduled-actions-sweep", hourly)

    assert (run.status, run.no_retry) == (500, True)
    assert "does not trigger" in str(run.output)


def invocation_of(fn_id: str) -> dict[str, Any]:
    """What Inngest sends when a function is invoked (the dashboard, step.invoke)."""
    return {"name": "inngest/function.invoked", "data": {"_inngest": {"fn_id": fn_id}}}


def test_inngest_cron_function_runs_the_sweep_when_invoked(web: str) -> None:
    run = run_function(
        web, "scheduled-actions-sweep", invocation_of(f"{APP_ID}-scheduled-actions-sweep")
    )

    assert run.status == 200
    assert "enqueued" in run.output


def test_inngest_cron_function_refuses_an_invocation_of_another_function(web: str) -> None:
    another = invocation_of(f"{APP_ID}-resend-summary-all")

    run = run_function(web, "scheduled-actions-sweep", another)

    assert (run.status, run.no_retry) == (500, True)
    assert "does not trigger" in str(run.output)


# Celery ---------------------------------------------------------------------------


def test_celery_invalid_payload_fails_without_retry() -> None:
    outcome = celery_task(scheduled_actions.execute_scheduled_action).apply(kwargs={"payload": {}})
    assert outcome.failed()
    assert isinstance(outcome.result, JobFailed)
    assert "scheduledActionId" in str(outcome.result)
    trace = traceback_text(outcome)
    assert trace is not None and "Retry" not in trace


def test_celery_task_returns_its_outcome_and_detail_as_one_line() -> None:
    missing = {"scheduledActionId": f"gone-{uuid.uuid4().hex}"}

    outcome = celery_task(scheduled_actions.execute_scheduled_action).apply(
        kwargs={"payload": missing}
    )

    assert outcome.result == "skipped: no such scheduled action"


def test_celery_logs_a_job_that_failed_for_good_in_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    outcome = celery_task(scheduled_actions.execute_scheduled_action).apply(kwargs={"payload": {}})

    assert outcome.failed()
    worker_lines = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert [r.levelno for r in worker_lines] == [logging.INFO]
    assert "raised expected: JobFailed" in worker_lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_celery_job_beyond_the_horizon_waits_in_the_database(mailbox: Mailbox, worker: Any) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    far = utcnow() + timedelta(days=30)
    receipt = enqueue(*wire(JOB, {"scheduledActionId": row.id}), at=far, dedup_id=f"far-{row.id}")
    assert (receipt.provider, receipt.id) == (Provider.CELERY, f"deferred:far-{row.id}")
    assert deferred.release_due(JOBS) == 0  # not near yet: nothing reaches the broker

    assert deferred.release_due(JOBS, now=far) == 1  # the day comes: published, then forgotten
    assert deferred.release_due(JOBS, now=far) == 0
    wait_for(
        lambda: action(row.id).status is ActionStatus.COMPLETED,
        timeout=30,
        what="the released job to run",
    )
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}


def test_cancelling_a_deferred_celery_job_removes_it(mailbox: Mailbox) -> None:
    far = utcnow() + timedelta(days=30)
    spec, payload = wire(JOB, {"scheduledActionId": "x"})
    receipt = enqueue(spec, payload, at=far, dedup_id="far-cancel")
    assert cancel(receipt, spec, payload.to_wire()) is True
    assert deferred.release_due(JOBS, now=far) == 0


def test_a_retried_qstash_message_runs_once_it_is_due(web: str, mailbox: Mailbox) -> None:
    due = utcnow() + timedelta(seconds=1)
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0], scheduled_for=due)
    message = qstash_message_for(row.id)
    assert deliver(message, web).status_code == 503  # too early: not remembered as final

    wait_until_time(due.timestamp())
    message.retried += 1
    response = deliver(message, web)

    assert response.json()["outcome"] == "done"
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}


def test_inngest_refuses_a_delay_beyond_its_366_day_sleep(fake_inngest: Any) -> None:
    from bridge import DelayUnsupported

    with pytest.raises(DelayUnsupported, match="366 days"):
        enqueue(*wire(JOB, {"scheduledActionId": "a1"}), at=utcnow() + timedelta(days=400))
    assert fake_inngest.events == []
