"""Bulk processing: start, page through the inbox, apply rules, count once, complete."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bridge.core import run_job
from bridge.outcome import Delivery
from bridge.store.db import read_scope, session_scope
from bridge.web.factory import create_app
from config import get_settings
from tasks.jobs import bulk_process, bulk_worker
from tasks.models import (
    BulkJobStatus,
    BulkProcessJob,
    ExecutedRule,
    ExecutedRuleStatus,
    utcnow,
)
from tests.support import env
from tests.support.bulk_inbox import Inbox, finished, seed_inbox
from tests.support.services import free_port
from tests.support.wait import wait_for


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return seed_inbox(tmp_path)


def test_bulk_run_on_celery_applies_rules_page_by_page_and_completes(
    inbox: Inbox, worker: Any
) -> None:
    job = bulk_process.start(inbox.account_id, utcnow() - timedelta(days=1), None, False)
    done = wait_for(lambda: finished(job.id), timeout=60, what="the bulk job to complete")

    assert (done.pages_fetched, done.total_emails, done.emails_queued) == (2, 40, 40)
    assert (done.processed, done.failed, done.all_queued) == (40, 0, True)
    archived = inbox.provider().folder_keys("Archive")
    assert len(archived) == 20
    assert all("Newsletter" in inbox.provider().get_message(k).subject for k in archived)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ExecutedRule)) == 40


def test_a_second_run_skips_messages_that_already_have_a_result(inbox: Inbox, worker: Any) -> None:
    first = bulk_process.start(inbox.account_id, utcnow() - timedelta(days=1), None, False)
    wait_for(lambda: finished(first.id), timeout=60, what="the first run")
    second = bulk_process.start(inbox.account_id, utcnow() - timedelta(days=1), None, False)
    done = wait_for(lambda: finished(second.id), timeout=60, what="the second run")
    assert (done.total_emails, done.emails_queued, done.processed) == (20, 0, 0)


def test_redelivered_pages_and_messages_count_once(inbox: Inbox, configure: Any) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    from tasks.models import BulkProcessJob

    with session_scope() as session:
        job = BulkProcessJob(
            email_account_id=inbox.account_id,
            start_date=utcnow() - timedelta(days=1),
            only_unread=False,
            status=BulkJobStatus.RUNNING,
            emails_queued=1,
            pages_fetched=1,
            all_queued=True,
        )
        session.add(job)
    key = next(iter(inbox.provider().folder_keys("INBOX")))
    payload = {
        "jobId": job.id,
        "emailAccountId": inbox.account_id,
        "messageId": key,
        "threadId": key,
    }
    spec = bulk_worker.process_message
    results = [run_job(spec, payload, Delivery("test", "same", n)).outcome.value for n in range(3)]

    final = bulk_process.get(job.id)
    assert results == ["done", "done", "done"]
    assert final is not None
    assert (final.processed, final.failed, final.status) == (1, 0, BulkJobStatus.COMPLETED)


def first_page_after_results(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch, results_at: dict[str, timedelta]
) -> tuple[BulkProcessJob, set[str]]:
    """Start a run, give messages a rule result at the given offsets from the run's start,
    fetch its first page: the run then, and the messages its workers were published for."""
    monkeypatch.setattr(bulk_process, "GO_ON_SECONDS", 0.0)  # the first page alone
    published: list[Any] = []
    monkeypatch.setattr(
        bulk_process, "enqueue", lambda spec, payload, **_: published.append(payload)
    )
    monkeypatch.setattr(
        bulk_process, "enqueue_many", lambda spec, payloads, **_: published.extend(payloads)
    )
    job = bulk_process.start(inbox.account_id, utcnow() - timedelta(days=1), None, False)
    (page,) = published
    with session_scope() as session:
        for message_id, offset in results_at.items():
            session.add(
                ExecutedRule(
                    email_account_id=inbox.account_id,
                    message_id=message_id,
                    thread_id=message_id,
                    status=ExecutedRuleStatus.APPLIED,
                    created_at=job.created_at + offset,
                )
            )
    published.clear()
    data = page.model_dump(by_alias=True, mode="json")
    run_job(bulk_process.fetch_page, data, Delivery("test", "page-0", 0))
    workers = {w.message_id for w in published if isinstance(w, bulk_worker.ProcessMessage)}
    row = bulk_process.get(job.id)
    assert row is not None
    return row, workers


def test_a_page_leaves_out_messages_handled_before_the_run(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled = inbox.newest_key()

    run, workers = first_page_after_results(inbox, monkeypatch, {handled: -timedelta(hours=1)})

    assert handled not in workers
    assert (run.total_emails, run.emails_queued) == (25, 24)


def test_a_page_queues_a_message_this_runs_worker_handled_before_its_count(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An earlier try of this page published the message, and its worker applied the rules,
    # then both failed to count (the database went away): the retry must still queue it.
    mine = inbox.newest_key()

    run, workers = first_page_after_results(inbox, monkeypatch, {mine: timedelta(seconds=1)})

    assert mine in workers
    assert (run.total_emails, run.emails_queued) == (25, 25)


def test_cancelled_job_skips_its_queued_work(inbox: Inbox, configure: Any) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    from tasks.models import BulkProcessJob

    with session_scope() as session:
        job = BulkProcessJob(
            email_account_id=inbox.account_id, start_date=utcnow(), status=BulkJobStatus.RUNNING
        )
        session.add(job)
    assert bulk_process.cancel(job.id) is True
    assert bulk_process.cancel(job.id) is False
    payload = {
        "jobId": job.id,
        "emailAccountId": inbox.account_id,
        "messageId": "x",
        "threadId": "x",
    }
    result = run_job(bulk_worker.process_message, payload, Delivery("test", "d", 0))
    assert (result.outcome.value, result.detail) == ("skipped", "job was cancelled")


# The start and cancel routes, in-process on the suite's own (Celery) configuration -----


@pytest.fixture
def api() -> Iterator[TestClient]:
    app = create_app(get_settings())
    with TestClient(app, headers={"x-api-key": env.INTERNAL_API_KEY}) as client:
        yield client


def test_start_route_creates_the_job_and_refuses_a_second_open_one(
    inbox: Inbox, api: TestClient
) -> None:
    body = {"emailAccountId": inbox.account_id, "startDate": "2026-01-01T00:00:00Z"}
    first = api.post("/api/bulk-process/start", json=body)
    second = api.post("/api/bulk-process/start", json=body)
    assert first.status_code == 200 and first.json()["status"] == "PENDING"
    assert second.status_code == 409


def test_cancel_route_cancels_an_open_job(inbox: Inbox, api: TestClient) -> None:
    body = {"emailAccountId": inbox.account_id, "startDate": "2026-01-01T00:00:00Z"}
    job_id = api.post("/api/bulk-process/start", json=body).json()["jobId"]
    assert api.post(f"/api/bulk-process/cancel/{job_id}").json() == {
        "jobId": job_id,
        "status": "CANCELLED",
    }
    assert api.post(f"/api/bulk-process/cancel/{job_id}").status_code == 409
    assert api.post("/api/bulk-process/cancel/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"emailAccountId": "nobody", "startDate": "2026-01-01T00:00:00Z"}, 404),
        ({"startDate": "2026-01-01T00:00:00Z"}, 422),
        ({"emailAccountId": "x", "startDate": "2026-01-01T00:00:00"}, 422),
    ],
)
def test_start_route_rejects_bad_requests(
    api: TestClient, body: dict[str, Any], status: int
) -> None:
    assert api.post("/api/bulk-process/start", json=body).status_code == status


def test_start_route_refuses_an_end_date_before_the_start_date_creating_nothing(
    inbox: Inbox, api: TestClient
) -> None:
    body = {
        "emailAccountId": inbox.account_id,
        "startDate": "2026-01-02T00:00:00Z",
        "endDate": "2026-01-01T00:00:00Z",
    }

    response = api.post("/api/bulk-process/start", json=body)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "endDate"] and "before startDate" in error["msg"]
    with read_scope() as session:
        assert session.scalar(select(func.count()).select_from(BulkProcessJob)) == 0


def test_start_route_needs_the_internal_key(api: TestClient) -> None:
    response = api.post("/api/bulk-process/start", json={}, headers={"x-api-key": "wrong"})
    assert response.status_code == 401


def test_start_and_cancel_routes_answer_503_while_the_database_is_away(configure: Any) -> None:
    port = free_port()  # nothing listens there
    settings = configure(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/away")
    body = {"emailAccountId": "a", "startDate": "2026-01-01T00:00:00Z"}
    with TestClient(create_app(settings), headers={"x-api-key": env.INTERNAL_API_KEY}) as api:
        answers = [
            api.post("/api/bulk-process/start", json=body),
            api.post("/api/bulk-process/cancel/abc"),
        ]
    for answer in answers:
        assert answer.status_code == 503
        assert int(answer.headers["Retry-After"]) > 0
        assert "OperationalError" in answer.json()["detail"]
        assert str(port) not in answer.text


def test_start_route_answers_503_when_the_first_page_cannot_be_queued(
    inbox: Inbox, configure: Any
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    inngest = {**env.INNGEST_ENV, "INNGEST_BASE_URL": dead}
    settings = configure(**inngest, JOB_PROVIDER="inngest", JOB_FAILOVER="false")
    body = {"emailAccountId": inbox.account_id, "startDate": "2026-01-01T00:00:00Z"}
    with TestClient(create_app(settings), headers={"x-api-key": env.INTERNAL_API_KEY}) as api:
        answer = api.post("/api/bulk-process/start", json=body)

    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "could not queue the run's first page (inngest" in answer.json()["detail"]
    with session_scope() as session:  # closed, so that a retry may start a new run
        statuses = session.scalars(select(BulkProcessJob.status)).all()
    assert statuses == [BulkJobStatus.FAILED]
