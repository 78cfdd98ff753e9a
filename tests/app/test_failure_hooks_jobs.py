"""The inbox app's on_failure hooks: a bulk message that failed for good is counted as
failed (so the run completes), a scheduled action that failed for good is FAILED with
the error. QStash deliveries run in-process (the failure is made with monkeypatch);
Inngest's failure functions are served by the session web server and called with the
lifecycle events Inngest sends (tests/support/inngest_lifecycle.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bridge.store.db import session_scope
from bridge.web.factory import create_app
from tasks import scheduled_actions
from tasks.jobs import bulk_process, bulk_worker
from tasks.mail.maildir import MaildirProvider
from tasks.models import (
    ActionStatus,
    ActionType,
    BulkJobStatus,
    BulkProcessJob,
    ScheduledAction,
    utcnow,
)
from tests.conftest import Mailbox
from tests.support import env
from tests.support.actions import insert_action
from tests.support.fake_inngest import APP_ID, run_function
from tests.support.fake_qstash import mint_signature
from tests.support.inngest_lifecycle import cancelled_event, failed_event, run_id
from tests.support.inngest_sync import synced_functions

WORKER_ROUTE = "/api/bulk-process/worker"
EXECUTE_ROUTE = "/api/scheduled-actions/execute"


def pending_job(account_id: str) -> str:
    """A bulk run just started: no page fetched yet."""
    with session_scope() as session:
        job = BulkProcessJob(email_account_id=account_id, start_date=utcnow(), only_unread=False)
        session.add(job)
    return job.id


def running_job(account_id: str, queued: int = 1) -> str:
    """A bulk run with every page fetched and `queued` messages still to count."""
    with session_scope() as session:
        job = BulkProcessJob(
            email_account_id=account_id,
            start_date=utcnow(),
            only_unread=False,
            status=BulkJobStatus.RUNNING,
            emails_queued=queued,
            pages_fetched=1,
            all_queued=True,
        )
        session.add(job)
    return job.id


def worker_event(job_id: str, mailbox: Mailbox) -> dict[str, Any]:
    key = mailbox.keys[0]
    data = {
        "jobId": job_id,
        "emailAccountId": mailbox.account_id,
        "messageId": key,
        "threadId": key,
    }
    return {"name": bulk_worker.WORKER_EVENT, "data": data}


def action(action_id: str) -> ScheduledAction:
    row = scheduled_actions.get(action_id)
    assert row is not None
    return row


def counts(job_id: str) -> tuple[int, int, BulkJobStatus]:
    row = bulk_process.get(job_id)
    assert row is not None
    return row.processed, row.failed, row.status


# QStash ---------------------------------------------------------------------------


@pytest.fixture
def app(configure: Callable[..., Any]) -> Iterator[TestClient]:
    with TestClient(create_app(configure(**env.QSTASH_ENV))) as client:
        yield client


def qstash_post(app: TestClient, route: str, data: dict[str, Any], retried: int) -> Any:
    raw = json.dumps(data).encode()
    headers = {
        "Content-Type": "application/json",
        "Upstash-Message-Id": f"msg_{uuid.uuid4().hex}",
        "Upstash-Retried": str(retried),
        "Upstash-Signature": mint_signature(raw, env.WEBHOOK_URL + route),
    }
    return app.post(route, content=raw, headers=headers)


def down(*args: Any, **kwargs: Any) -> Any:
    raise ConnectionError("mail server unreachable")


@pytest.fixture
def mail_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MaildirProvider, "get_message", down)
    monkeypatch.setattr(scheduled_actions, "perform", down)


def test_bulk_message_failing_before_the_last_attempt_is_not_counted(
    app: TestClient, mailbox: Mailbox, mail_down: None
) -> None:
    job_id = running_job(mailbox.account_id)
    data = worker_event(job_id, mailbox)["data"]
    response = qstash_post(app, WORKER_ROUTE, data, retried=bulk_worker.process_message.retries - 1)
    assert response.status_code == 503
    assert counts(job_id) == (0, 0, BulkJobStatus.RUNNING)


def test_bulk_message_failing_on_the_last_attempt_is_counted_failed_and_completes_the_run(
    app: TestClient, mailbox: Mailbox, mail_down: None
) -> None:
    job_id = running_job(mailbox.account_id)
    data = worker_event(job_id, mailbox)["data"]
    response = qstash_post(app, WORKER_ROUTE, data, retried=bulk_worker.process_message.retries)
    assert response.status_code == 503
    assert counts(job_id) == (0, 1, BulkJobStatus.COMPLETED)


def test_bulk_page_failing_on_the_last_attempt_closes_its_run_as_failed(
    app: TestClient, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MaildirProvider, "list_threads", down)
    job_id = pending_job(mailbox.account_id)
    data = {"jobId": job_id, "emailAccountId": mailbox.account_id, "pageCount": 0}
    fetcher = bulk_process.fetch_page

    before_last = qstash_post(app, fetcher.route, data, retried=fetcher.retries - 1)
    still_open = counts(job_id)[2]
    last = qstash_post(app, fetcher.route, data, retried=fetcher.retries)

    assert (before_last.status_code, still_open) == (503, BulkJobStatus.PENDING)
    assert last.status_code == 503
    row = bulk_process.get(job_id)
    assert row is not None and row.status is BulkJobStatus.FAILED
    assert row.error is not None and row.error.startswith("page 0: ")
    assert "mail server unreachable" in row.error


def test_a_page_published_ahead_that_gives_up_waiting_leaves_its_run_open(
    app: TestClient, mailbox: Mailbox
) -> None:
    job_id = pending_job(mailbox.account_id)
    ahead = {"jobId": job_id, "emailAccountId": mailbox.account_id, "pageCount": 1}
    fetcher = bulk_process.fetch_page

    last = qstash_post(app, fetcher.route, ahead, retried=fetcher.retries)

    assert last.status_code == 503  # page 0 is not counted yet: it waited, and gave up
    assert counts(job_id)[2] is BulkJobStatus.PENDING


def test_scheduled_action_failing_on_the_last_attempt_is_failed_with_the_error(
    app: TestClient, mailbox: Mailbox, mail_down: None
) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    retries = scheduled_actions.execute_scheduled_action.retries
    response = qstash_post(app, EXECUTE_ROUTE, {"scheduledActionId": row.id}, retried=retries)
    assert response.status_code == 503
    final = action(row.id)
    assert final.status is ActionStatus.FAILED
    assert final.error == "ConnectionError: mail server unreachable"


def test_scheduled_action_failing_before_the_last_attempt_stays_pending(
    app: TestClient, mailbox: Mailbox, mail_down: None
) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    response = qstash_post(app, EXECUTE_ROUTE, {"scheduledActionId": row.id}, retried=0)
    assert response.status_code == 503
    assert action(row.id).status is ActionStatus.PENDING


# Inngest --------------------------------------------------------------------------


def test_inngest_sync_registers_failure_functions_with_their_triggers(
    web: str, inngest_api: Any
) -> None:
    functions = synced_functions(web, inngest_api)
    worker = f"{APP_ID}-bulk-process-worker"
    failure = functions[f"{worker}-failure"]["triggers"]
    timed_out = functions[f"{worker}-timed-out"]["triggers"]
    assert failure == [
        {"event": "inngest/function.failed", "expression": f"event.data.function_id == '{worker}'"}
    ]
    assert timed_out == [
        {
            "event": "inngest/function.cancelled",
            "expression": f"event.data.function_id == '{worker}'",
        }
    ]
    # Delayable: no finish timeout, and its cancellations are its `cancel` events.
    execute = f"{APP_ID}-scheduled-action-execute"
    assert f"{execute}-failure" in functions and f"{execute}-timed-out" not in functions


def test_inngest_failed_worker_run_counts_its_message_failed_and_completes_the_run(
    web: str, mailbox: Mailbox
) -> None:
    job_id = running_job(mailbox.account_id)
    event = failed_event("bulk-process-worker", worker_event(job_id, mailbox), "RuntimeError")
    run = run_function(web, "bulk-process-worker-failure", event)
    assert (run.status, run.output["on_failure"]) == (200, "ran")
    assert counts(job_id) == (0, 1, BulkJobStatus.COMPLETED)


def test_inngest_worker_run_cancelled_by_its_finish_timeout_counts_its_message_failed(
    web: str, mailbox: Mailbox
) -> None:
    job_id = running_job(mailbox.account_id)
    event = cancelled_event("bulk-process-worker", worker_event(job_id, mailbox))
    run = run_function(web, "bulk-process-worker-timed-out", event)
    assert (run.status, run.output["on_failure"]) == (200, "ran")
    assert counts(job_id) == (0, 1, BulkJobStatus.COMPLETED)


def test_inngest_failure_event_delivered_twice_runs_the_hook_once(
    web: str, mailbox: Mailbox
) -> None:
    job_id = running_job(mailbox.account_id, queued=2)
    event = failed_event("bulk-process-worker", worker_event(job_id, mailbox), "boom", run=run_id())
    first = run_function(web, "bulk-process-worker-failure", event)
    again = run_function(web, "bulk-process-worker-failure", event)
    assert [first.output["on_failure"], again.output["on_failure"]] == ["ran", "not run"]
    assert counts(job_id) == (0, 1, BulkJobStatus.RUNNING)


def test_inngest_failure_of_another_job_is_refused(web: str, mailbox: Mailbox) -> None:
    job_id = running_job(mailbox.account_id)
    other = {"name": "inbox-zero/clean.process", "data": worker_event(job_id, mailbox)["data"]}
    run = run_function(
        web, "bulk-process-worker-failure", failed_event("clean-process", other, "x")
    )
    assert (run.status, run.no_retry) == (500, True)
    assert counts(job_id) == (0, 0, BulkJobStatus.RUNNING)


def test_inngest_failed_scheduled_action_run_marks_it_failed_with_the_error(
    web: str, mailbox: Mailbox
) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    original: dict[str, Any] = {
        "name": scheduled_actions.execute_scheduled_action.event,
        "data": {"scheduledActionId": row.id},
    }
    event = failed_event("scheduled-action-execute", original, "ConnectionError: relay down")
    run = run_function(web, "scheduled-action-execute-failure", event)
    assert run.status == 200
    final = action(row.id)
    assert (final.status, final.error) == (ActionStatus.FAILED, "ConnectionError: relay down")
