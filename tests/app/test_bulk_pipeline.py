"""Bulk runs keep the pool fed: a fetcher goes on to the pages after its own for a while,
then publishes the next page among its workers where they are queued; it counts each
page once and in order, and a copy of a page breeds no copies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from bridge.core import run_job
from bridge.outcome import Delivery
from bridge.receipt import Receipt
from bridge.store.db import session_scope
from config import Provider
from tasks.jobs import bulk_process, bulk_worker
from tasks.mail.maildir import MaildirProvider
from tasks.models import BulkJobStatus, BulkProcessJob, Rule, Sender, SenderStatus, utcnow
from tests.support.bulk_inbox import Inbox, seed_inbox

Published = list[tuple[str, Any]]


@pytest.fixture
def one_page_a_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetcher lists its own page only: it does not go on to the pages after it."""
    monkeypatch.setattr(bulk_process, "GO_ON_SECONDS", 0.0)


@pytest.fixture
def every_page_in_one_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetcher goes on to the pages after its own, however long they take."""
    monkeypatch.setattr(bulk_process, "GO_ON_SECONDS", 60.0)


@pytest.fixture
def inbox(tmp_path: Path, configure: Any) -> Inbox:
    # Nothing is published for real here: every publish is recorded (`published`).
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    return seed_inbox(tmp_path)


def published(
    monkeypatch: pytest.MonkeyPatch, provider: Provider = Provider.CELERY, fail_at: int = -1
) -> Published:
    """What the fetcher publishes from here on, in order: ("workers", message ids) and
    ("page", (page, the row's pagesFetched when it was published)); as `provider` would
    take it. The publish number `fail_at` raises instead."""
    calls: Published = []

    def record(what: str, value: Any, count: int) -> list[Receipt]:
        if len(calls) == fail_at:
            raise ConnectionError("broker gone")
        calls.append((what, value))
        return [Receipt(provider, f"r{len(calls)}-{n}") for n in range(count)]

    def enqueue_many(spec: Any, payloads: list[Any], **_: Any) -> list[Receipt]:
        return record("workers", [p.message_id for p in payloads], len(payloads))

    def enqueue(spec: Any, payload: Any, **_: Any) -> Receipt:
        row = bulk_process.get(payload.job_id)
        assert row is not None
        return record("page", (payload.page, row.pages_fetched), 1)[0]

    monkeypatch.setattr(bulk_process, "enqueue_many", enqueue_many)
    monkeypatch.setattr(bulk_process, "enqueue", enqueue)
    return calls


def open_job(inbox: Inbox, **values: Any) -> str:
    with session_scope() as session:
        job = BulkProcessJob(
            email_account_id=inbox.account_id,
            start_date=utcnow() - timedelta(days=1),
            only_unread=False,
            status=BulkJobStatus.RUNNING,
            **values,
        )
        session.add(job)
    return job.id


def fetch(job_id: str, inbox: Inbox, page: int, attempt: int = 0, token: str | None = None) -> Any:
    payload = {"jobId": job_id, "emailAccountId": inbox.account_id, "pageCount": page}
    if token is not None:
        payload["pageToken"] = token
    return run_job(bulk_process.fetch_page, payload, Delivery("test", f"p{page}", attempt))


def shape(calls: Published) -> list[tuple[str, Any]]:
    return [(what, len(value) if what == "workers" else value) for what, value in calls]


@pytest.mark.usefixtures("one_page_a_fetch")
def test_the_next_page_is_published_right_after_the_pages_workers_where_they_are_queued(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch, Provider.CELERY)
    job_id = open_job(inbox)

    assert fetch(job_id, inbox, 0).detail == "page 0: 25 of 25 threads queued"

    assert shape(calls) == [("workers", 25), ("page", (1, 0))]
    row = bulk_process.get(job_id)
    assert row is not None and (row.pages_fetched, row.emails_queued) == (1, 25)


@pytest.mark.usefixtures("one_page_a_fetch")
def test_where_jobs_run_during_their_publish_the_next_page_follows_the_count(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch, Provider.HTTP)
    job_id = open_job(inbox)

    fetch(job_id, inbox, 0)

    assert shape(calls) == [("workers", 25), ("page", (1, 1))]


def test_a_page_published_ahead_of_its_page_befores_count_is_retried(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch)
    job_id = open_job(inbox, pages_fetched=0)

    result = fetch(job_id, inbox, 1, token="after-page-0")

    assert (result.outcome.value, result.retry_after) == ("retry", 1.0)
    assert calls == []


@pytest.mark.usefixtures("one_page_a_fetch")
def test_a_retry_publishes_the_next_page_under_a_dedup_id_of_its_own(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The copy the first try published may give up waiting for this page's count; a
    # provider that keeps dedup ids (Inngest: 24 hours) must not drop the one that follows.
    page_ids: list[str] = []
    tries = iter([ConnectionError("broker gone")])

    def enqueue_many(spec: Any, payloads: list[Any], **_: Any) -> list[Receipt]:
        return [Receipt(Provider.CELERY, "r") for _ in payloads]

    def enqueue(spec: Any, payload: Any, *, dedup_id: str, **_: Any) -> Receipt:
        page_ids.append(dedup_id)
        if error := next(tries, None):  # published, and then the broker's answer was lost
            raise error
        return Receipt(Provider.CELERY, "r")

    monkeypatch.setattr(bulk_process, "enqueue_many", enqueue_many)
    monkeypatch.setattr(bulk_process, "enqueue", enqueue)
    job_id = open_job(inbox)

    assert fetch(job_id, inbox, 0, attempt=0).outcome.value == "retry"
    assert fetch(job_id, inbox, 0, attempt=1).outcome.value == "done"

    assert page_ids == [f"bulk-{job_id}-page-1", f"bulk-{job_id}-page-1-try-1"]


def test_a_copy_of_a_counted_page_publishes_nothing(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch)
    job_id = open_job(inbox, pages_fetched=1, next_page_token="after-page-0")

    result = fetch(job_id, inbox, 0, attempt=0)

    assert result.detail == "page 0 was already fetched"
    assert calls == []


def test_a_retry_of_a_counted_page_publishes_the_first_page_not_counted(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its earlier try may have gone on to pages after its own, counted them, and stopped
    # before publishing the one after those.
    calls = published(monkeypatch)
    next_one = open_job(inbox, pages_fetched=1, next_page_token="after-page-0")
    fetch(next_one, inbox, 0, attempt=1)
    bulk_process.cancel(next_one)
    further = open_job(inbox, pages_fetched=3, next_page_token="after-page-2")
    fetch(further, inbox, 0, attempt=1)
    bulk_process.cancel(further)
    all_counted = open_job(inbox, pages_fetched=2, all_queued=True)
    fetch(all_counted, inbox, 0, attempt=1)

    assert shape(calls) == [("page", (1, 1)), ("page", (3, 3))]


@pytest.mark.usefixtures("every_page_in_one_fetch")
def test_a_fetcher_goes_on_to_the_pages_after_its_own_publishing_each_pages_workers(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch)
    job_id = open_job(inbox)

    assert fetch(job_id, inbox, 0).detail == "pages 0-1: 40 of 40 threads queued"

    assert shape(calls) == [("workers", 25), ("workers", 15)]  # and no page message
    row = bulk_process.get(job_id)
    assert row is not None
    assert (row.pages_fetched, row.emails_queued, row.all_queued) == (2, 40, True)


@pytest.mark.usefixtures("every_page_in_one_fetch")
def test_a_page_the_fetcher_went_on_to_that_fails_goes_on_as_a_message_of_its_own(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch)
    # The recorder `published` just put in place of the module's own enqueue_many.
    publish_workers: Callable[..., list[Receipt]] = vars(bulk_process)["enqueue_many"]
    failures = iter([None, ConnectionError("broker gone")])  # page 1's workers fail

    def failing_once(*args: Any, **kwargs: Any) -> list[Receipt]:
        if error := next(failures, None):
            raise error
        return publish_workers(*args, **kwargs)

    monkeypatch.setattr(bulk_process, "enqueue_many", failing_once)
    job_id = open_job(inbox)

    result = fetch(job_id, inbox, 0)

    assert result.detail == (
        "page 0: 25 of 25 threads queued; page 1 goes on alone (ConnectionError)"
    )
    assert shape(calls) == [("workers", 25), ("page", (1, 1))]
    row = bulk_process.get(job_id)
    assert row is not None and (row.pages_fetched, row.emails_queued) == (1, 25)


@pytest.mark.usefixtures("every_page_in_one_fetch")
def test_when_that_page_cannot_be_published_either_the_retry_publishes_it(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch, fail_at=1)  # page 1's workers, then page 1 itself
    job_id = open_job(inbox)

    assert fetch(job_id, inbox, 0).outcome.value == "retry"

    assert shape(calls) == [("workers", 25)]
    again = published(monkeypatch)
    assert fetch(job_id, inbox, 0, attempt=1).detail == "page 0 was already fetched"
    assert shape(again) == [("page", (1, 1))]  # the first page not counted


def test_a_page_published_by_a_fetcher_that_went_on_has_a_dedup_id_naming_it(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another delivery may publish the same page on the same try: the page before's own.
    page_ids: list[str] = []

    def enqueue(spec: Any, payload: Any, *, dedup_id: str, **_: Any) -> Receipt:
        page_ids.append(dedup_id)
        return Receipt(Provider.CELERY, "r")

    monkeypatch.setattr(bulk_process, "enqueue", enqueue)
    job_id = open_job(inbox, pages_fetched=3, next_page_token="after-page-2")
    fetch(job_id, inbox, 0, attempt=1)
    fetch(job_id, inbox, 2, attempt=1)

    assert page_ids == [f"bulk-{job_id}-page-3-by-0-try-1", f"bulk-{job_id}-page-3-try-1"]


def test_a_retry_of_the_counted_last_page_completes_the_run(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = published(monkeypatch)
    job_id = open_job(inbox, pages_fetched=2, all_queued=True, emails_queued=0)

    fetch(job_id, inbox, 0, attempt=1)

    row = bulk_process.get(job_id)
    assert row is not None and row.status is BulkJobStatus.COMPLETED
    assert calls == []


def failed_for_good(inbox: Inbox, page: int, **values: Any) -> BulkProcessJob:
    """The run after the fetcher of `page` failed for good, on a run with `values`."""
    job_id = open_job(inbox, **values)
    payload = bulk_process.FetchPage(job_id=job_id, email_account_id=inbox.account_id, page=page)
    bulk_process.fetcher_failed(payload, "broker gone")
    row = bulk_process.get(job_id)
    assert row is not None
    return row


def test_the_page_a_run_waits_on_failed_for_good_fails_the_run(inbox: Inbox) -> None:
    row = failed_for_good(inbox, 2, pages_fetched=2, next_page_token="after-page-1")

    assert (row.status, row.error) == (BulkJobStatus.FAILED, "page 2: broker gone")


def test_a_page_published_ahead_failed_for_good_leaves_the_run_open(inbox: Inbox) -> None:
    row = failed_for_good(inbox, 2, pages_fetched=1, next_page_token="after-page-0")

    assert row.status is BulkJobStatus.RUNNING


def test_a_counted_page_failed_for_good_publishes_the_first_page_not_counted(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy, or a fetcher that went on and could not publish what follows: the run goes on.
    page_ids: list[str] = []

    def enqueue(spec: Any, payload: Any, *, dedup_id: str, **_: Any) -> Receipt:
        page_ids.append(f"{payload.page} {payload.page_token} {dedup_id}")
        return Receipt(Provider.CELERY, "r")

    monkeypatch.setattr(bulk_process, "enqueue", enqueue)

    row = failed_for_good(inbox, 2, pages_fetched=4, next_page_token="after-page-3")

    assert row.status is BulkJobStatus.RUNNING
    assert page_ids == [f"4 after-page-3 bulk-{row.id}-page-4-by-2-hook"]


def test_a_counted_page_failed_for_good_after_the_last_completes_the_run(inbox: Inbox) -> None:
    row = failed_for_good(inbox, 2, pages_fetched=4, all_queued=True, emails_queued=0)

    assert row.status is BulkJobStatus.COMPLETED


@pytest.mark.usefixtures("one_page_a_fetch")
def test_a_page_counted_after_a_failed_try_counts_what_the_run_counted_once(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:  # no rule: processed messages stay in the inbox
        session.execute(delete(Rule).where(Rule.email_account_id == inbox.account_id))
    job_id = open_job(inbox)
    first = published(monkeypatch, fail_at=1)  # the workers went, the next page did not
    assert fetch(job_id, inbox, 0).outcome.value == "retry"
    ((_, published_workers),) = first
    early = published_workers[:5]
    for message_id in early:  # those workers ran before the page's retry
        message = {"jobId": job_id, "emailAccountId": inbox.account_id}
        message |= {"messageId": message_id, "threadId": message_id}
        run_job(bulk_worker.process_message, message, Delivery("test", message_id, 0))

    again = published(monkeypatch)
    fetch(job_id, inbox, 0, attempt=1)

    assert shape(again) == [("workers", 20), ("page", (1, 0))]
    assert not set(early) & {m for what, ids in again if what == "workers" for m in ids}
    row = bulk_process.get(job_id)
    assert row is not None and (row.emails_queued, row.processed) == (25, 5)


@pytest.mark.usefixtures("one_page_a_fetch")
def test_a_page_reads_its_messages_only_to_filter_ignored_senders(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    published(monkeypatch)
    reads: list[str] = []
    read: Callable[..., Any] = MaildirProvider.get_message

    def counting(self: MaildirProvider, message_id: str) -> Any:
        reads.append(message_id)
        return read(self, message_id)

    monkeypatch.setattr(MaildirProvider, "get_message", counting)

    first = open_job(inbox)
    fetch(first, inbox, 0)
    assert reads == []
    bulk_process.cancel(first)

    with session_scope() as session:
        sender = Sender(
            email_account_id=inbox.account_id,
            email="hello0@example.test",
            status=SenderStatus.IGNORED,
        )
        session.add(sender)
    result = fetch(open_job(inbox), inbox, 0)
    assert (len(reads), result.detail) == (25, "page 0: 24 of 25 threads queued")
