"""Bulk runs read the replaced app's messages: the fetcher's `pageCount`, window and
options, the worker's `forceReprocess`; and write messages that app could read."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.core import run_job
from bridge.outcome import Delivery
from bridge.store.db import session_scope
from tasks.jobs import bulk_process, bulk_worker
from tasks.models import (
    BulkJobStatus,
    BulkProcessJob,
    ExecutedRule,
    ExecutedRuleStatus,
    RuleActionType,
    utcnow,
)
from tests.support.bulk_inbox import Inbox, finished, seed_inbox
from tests.support.rules import add_rule
from tests.support.wait import wait_for


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return seed_inbox(tmp_path)


def open_job(inbox: Inbox, status: BulkJobStatus = BulkJobStatus.RUNNING, **values: Any) -> str:
    with session_scope() as session:
        job = BulkProcessJob(email_account_id=inbox.account_id, status=status, **values)
        session.add(job)
    return job.id


def iso(days_ago: int) -> str:
    return (utcnow() - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")


def archive_hellos(inbox: Inbox) -> None:
    add_rule(inbox.account_id, "hellos", [{"type": RuleActionType.ARCHIVE}], subject_pattern="hel")


def results() -> list[tuple[str, ExecutedRuleStatus]]:
    with session_scope() as session:
        return sorted(session.execute(select(ExecutedRule.message_id, ExecutedRule.status)).all())


def test_old_fetcher_message_is_read_at_its_page_count(inbox: Inbox, worker: Any) -> None:
    job_id = open_job(inbox, start_date=utcnow() - timedelta(days=1), pages_fetched=3)
    message = {"jobId": job_id, "emailAccountId": inbox.account_id, "pageCount": 3}
    message |= {"startDate": iso(1), "onlyUnread": False, "forceReprocess": False}

    result = run_job(bulk_process.fetch_page, message, Delivery("test", "page-3", 0))

    # Page 4 (the last) in the same call: the fetcher goes on to the pages after its own.
    assert result.detail == "pages 3-4: 40 of 40 threads queued"
    # Its workers run on the worker; waited for, so no job of this run outlives the test.
    done = wait_for(lambda: finished(job_id), timeout=60, what="the run to complete")
    assert (done.pages_fetched, done.total_emails, done.processed) == (5, 40, 40)


def test_old_fetcher_message_lists_the_window_and_options_it_carries(
    inbox: Inbox, worker: Any
) -> None:
    # The row's window lies in the future and asks for unread mail only: read from the
    # row, the page would list nothing.
    job_id = open_job(inbox, start_date=utcnow() + timedelta(days=1), only_unread=True)
    for key in list(inbox.provider().folder_keys("INBOX"))[:10]:
        inbox.provider().mark_read(key)
    message = {"jobId": job_id, "emailAccountId": inbox.account_id, "pageCount": 0}
    message |= {"startDate": iso(1), "endDate": iso(-1), "onlyUnread": False}

    run_job(bulk_process.fetch_page, message, Delivery("test", "page-0", 0))
    done = wait_for(lambda: finished(job_id), timeout=60, what="the run to complete")

    assert (done.total_emails, done.emails_queued, done.processed) == (40, 40, 40)


def test_our_fetcher_messages_carry_what_the_old_fetcher_requires(inbox: Inbox) -> None:
    row = BulkProcessJob(id="j1", email_account_id=inbox.account_id, start_date=utcnow())
    window = bulk_process.Window(row.start_date, None, only_unread=True, force_reprocess=False)

    wire = bulk_process.page_message(row, window, 2, "token").to_wire()

    # The replaced app's fetcher schema: jobId, emailAccountId, startDate (text),
    # onlyUnread (boolean) required; pageCount, pageToken, forceReprocess read.
    assert {"jobId", "emailAccountId", "startDate", "onlyUnread"} <= set(wire)
    assert (wire["pageCount"], wire["pageToken"], wire["forceReprocess"]) == (2, "token", False)
    assert isinstance(wire["startDate"], str) and "page" not in wire


def test_a_forced_run_applies_the_rules_again_to_messages_with_a_result(
    inbox: Inbox, worker: Any
) -> None:
    since = utcnow() - timedelta(days=1)
    first = bulk_process.start(inbox.account_id, since, None, False)
    wait_for(lambda: finished(first.id), timeout=60, what="the first run")
    # A rule added since: only a forced run applies it to mail that has a result.
    archive_hellos(inbox)

    forced = bulk_process.start(inbox.account_id, since, None, False, force_reprocess=True)
    done = wait_for(lambda: finished(forced.id), timeout=60, what="the forced run")

    assert (done.total_emails, done.emails_queued, done.processed) == (20, 20, 20)
    assert inbox.provider().folder_keys("INBOX") == set()
    statuses = [status for _, status in results()]
    assert statuses == [ExecutedRuleStatus.APPLIED] * 40  # rewritten, not added


def worker_message(inbox: Inbox, job_id: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "emailAccountId": inbox.account_id,
        "messageId": key,
        "threadId": key,
        **extra,
    }


def hello_with_a_result(inbox: Inbox) -> str:
    """A message the rules looked at (no match), then a rule that would now match it."""
    mail = inbox.provider()
    key = next(k for k in mail.folder_keys("INBOX") if "Hello" in mail.get_message(k).subject)
    run = run_job(
        bulk_worker.process_message,
        worker_message(inbox, open_job(inbox, BulkJobStatus.COMPLETED, start_date=utcnow()), key),
        Delivery("test", "first-look", 0),
    )
    assert run.detail == "rules no_match: -"
    archive_hellos(inbox)
    return key


def test_old_worker_message_with_force_reprocess_applies_the_rules_again(inbox: Inbox) -> None:
    key = hello_with_a_result(inbox)
    message = worker_message(inbox, open_job(inbox, start_date=utcnow()), key, forceReprocess=True)

    result = run_job(bulk_worker.process_message, message, Delivery("test", "forced", 0))

    assert result.detail == "rules applied: hellos"
    assert inbox.provider().folder_keys("Archive") == {key}
    assert results() == [(key, ExecutedRuleStatus.APPLIED)]


def test_a_forced_message_is_applied_once_per_run_however_often_delivered(inbox: Inbox) -> None:
    key = hello_with_a_result(inbox)
    message = worker_message(inbox, open_job(inbox, start_date=utcnow()), key, forceReprocess=True)

    outcomes = [
        run_job(bulk_worker.process_message, message, Delivery("test", f"d{n}", n)).detail
        for n in range(3)
    ]

    assert outcomes[1:] == ["message was already processed in this run"] * 2
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ExecutedRule)) == 1


def test_worker_message_without_force_leaves_a_result_alone(inbox: Inbox) -> None:
    key = hello_with_a_result(inbox)
    message = worker_message(inbox, open_job(inbox, start_date=utcnow()), key)

    result = run_job(bulk_worker.process_message, message, Delivery("test", "plain", 0))

    assert result.detail == "rules already: -"
    assert results() == [(key, ExecutedRuleStatus.NO_MATCH)]


def test_a_page_count_the_run_could_not_store_is_a_permanent_failure_naming_it() -> None:
    message = {"jobId": "job", "emailAccountId": "acc", "pageCount": 10**30}

    result = run_job(bulk_process.fetch_page, message, Delivery("qstash", "msg-huge-page", 0))

    assert result.outcome.value == "failed"
    assert "pageCount" in result.detail
