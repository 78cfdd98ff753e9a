"""Bulk workers as a batch (`bulk_worker.process_messages`, what Celery runs for a page's
messages): each message keeps its own outcome, each is counted once, a repeated batch
changes nothing, and what was done before a message raised stays counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from bridge.core import run_batch
from bridge.outcome import Delivery, RetryLater
from bridge.store.db import read_scope, session_scope
from tasks.demo import add_account
from tasks.jobs import bulk_process, bulk_worker
from tasks.mail.maildir import MaildirProvider
from tasks.models import (
    BulkJobStatus,
    BulkProcessItem,
    BulkProcessJob,
    ExecutedRule,
    ExecutedRuleStatus,
    Rule,
    utcnow,
)
from tasks.rules.results import RuleResult, record_first_results
from tests.support.bulk_inbox import Inbox, seed_inbox


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return seed_inbox(tmp_path)


def open_run(inbox: Inbox, queued: int, *, force: bool = False) -> str:
    """A RUNNING run with every page counted and `queued` messages to process."""
    with session_scope() as session:
        row = BulkProcessJob(
            email_account_id=inbox.account_id,
            start_date=utcnow(),
            status=BulkJobStatus.RUNNING,
            emails_queued=queued,
            pages_fetched=1,
            all_queued=True,
            force_reprocess=force,
        )
        session.add(row)
    return row.id


def workers(inbox: Inbox, job_id: str, keys: list[str]) -> list[dict[str, Any]]:
    return [
        {"jobId": job_id, "emailAccountId": inbox.account_id, "messageId": key, "threadId": key}
        for key in keys
    ]


def inbox_keys(inbox: Inbox, count: int) -> list[str]:
    return sorted(inbox.provider().folder_keys("INBOX"))[:count]


def batch(payloads: list[dict[str, Any]], attempt: int = 0) -> list[str]:
    delivery = Delivery("celery", f"batch-{attempt}", attempt, attempt > 0)
    results = run_batch(bulk_worker.process_message, payloads, delivery)
    return [result.outcome.value for result in results]


def run_state(job_id: str) -> tuple[int, int, BulkJobStatus]:
    row = bulk_process.get(job_id)
    assert row is not None
    return row.processed, row.failed, row.status


def items_of(job_id: str) -> int:
    with read_scope() as session:
        counted = select(func.count()).where(BulkProcessItem.job_id == job_id)
        return session.scalar(counted) or 0


def rule_results(account_id: str) -> int:
    with read_scope() as session:
        found = select(func.count()).where(ExecutedRule.email_account_id == account_id)
        return session.scalar(found) or 0


def test_a_batch_processes_each_message_and_its_count_completes_the_run(inbox: Inbox) -> None:
    keys = inbox_keys(inbox, 6)
    job_id = open_run(inbox, queued=6)

    assert batch(workers(inbox, job_id, keys)) == ["done"] * 6

    assert run_state(job_id) == (6, 0, BulkJobStatus.COMPLETED)
    assert (items_of(job_id), rule_results(inbox.account_id)) == (6, 6)


def test_a_batch_delivered_again_counts_nothing_twice(inbox: Inbox) -> None:
    keys = inbox_keys(inbox, 4)
    job_id = open_run(inbox, queued=10)
    payloads = workers(inbox, job_id, keys)
    batch(payloads)

    assert batch(payloads, attempt=1) == ["done"] * 4

    assert run_state(job_id) == (4, 0, BulkJobStatus.RUNNING)
    assert (items_of(job_id), rule_results(inbox.account_id)) == (4, 4)


def test_a_forced_batch_delivered_again_applies_the_rules_once_per_message(inbox: Inbox) -> None:
    keys = inbox_keys(inbox, 3)
    job_id = open_run(inbox, queued=3, force=True)
    payloads = workers(inbox, job_id, keys)
    batch(payloads)

    assert batch(payloads, attempt=1) == ["skipped"] * 3
    assert run_state(job_id) == (3, 0, BulkJobStatus.COMPLETED)


def test_each_message_keeps_its_own_outcome(inbox: Inbox) -> None:
    keys = inbox_keys(inbox, 2)
    other = open_run(inbox, queued=1)
    bulk_process.cancel(other)  # one open run per account
    job_id = open_run(inbox, queued=3)
    payloads = [
        *workers(inbox, job_id, [keys[0], "gone-since-listed"]),
        *workers(inbox, other, [keys[1]]),
        *workers(inbox, "no-such-run", [keys[1]]),
    ]

    assert batch(payloads) == ["done", "skipped", "skipped", "failed"]
    # The message gone since its page was listed is counted (skipped), the cancelled
    # run's is not, and the unknown run's is left to the failure hook.
    assert run_state(job_id) == (2, 0, BulkJobStatus.RUNNING)
    assert items_of(other) == 0


def test_what_was_done_before_a_message_raised_stays_counted(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = inbox_keys(inbox, 3)
    job_id = open_run(inbox, queued=3)
    real_get = MaildirProvider.get_message

    def away_for_the_last(self: MaildirProvider, key: str) -> Any:
        if key == keys[2]:
            raise OSError("the mail store is away")
        return real_get(self, key)

    monkeypatch.setattr(MaildirProvider, "get_message", away_for_the_last)

    assert batch(workers(inbox, job_id, keys)) == ["retry"] * 3  # each is sent back alone

    assert run_state(job_id) == (2, 0, BulkJobStatus.RUNNING)


def test_a_batch_of_two_accounts_is_retried_message_by_message(
    inbox: Inbox, tmp_path: Path
) -> None:
    other = add_account("other@example.test", tmp_path / "other")
    job_id = open_run(inbox, queued=2)
    payloads = workers(inbox, job_id, inbox_keys(inbox, 2))
    payloads[1]["emailAccountId"] = other.id

    assert batch(payloads) == ["retry", "retry"]
    assert items_of(job_id) == 0


def test_a_message_the_mail_server_asks_to_wait_for_is_retried_alone_with_its_wait(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = inbox_keys(inbox, 3)
    job_id = open_run(inbox, queued=3)
    real_get = MaildirProvider.get_message

    def limited_for_one(self: MaildirProvider, key: str) -> Any:
        if key == keys[1]:
            raise RetryLater("rate limited", 120.0)
        return real_get(self, key)

    monkeypatch.setattr(MaildirProvider, "get_message", limited_for_one)
    delivery = Delivery("celery", "batch", 0)

    results = run_batch(bulk_worker.process_message, workers(inbox, job_id, keys), delivery)

    assert [(r.outcome.value, r.retry_after) for r in results] == [
        ("done", None),
        ("retry", 120.0),
        ("done", None),
    ]
    assert run_state(job_id) == (2, 0, BulkJobStatus.RUNNING)


def test_a_forced_message_is_counted_before_the_next_one_is_read(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = inbox_keys(inbox, 3)
    job_id = open_run(inbox, queued=3, force=True)
    counted_when_read: list[int] = []
    real_get = MaildirProvider.get_message

    def noting(self: MaildirProvider, key: str) -> Any:
        counted_when_read.append(items_of(job_id))
        return real_get(self, key)

    monkeypatch.setattr(MaildirProvider, "get_message", noting)

    batch(workers(inbox, job_id, keys))

    assert counted_when_read == [0, 1, 2]  # a batch cut short leaves these counted


def test_results_the_database_refuses_together_are_recorded_one_by_one(inbox: Inbox) -> None:
    mail = inbox.provider()
    kept, refused = (mail.get_message(key) for key in inbox_keys(inbox, 2))
    results = [
        RuleResult(inbox.account_id, kept, None, ExecutedRuleStatus.NO_MATCH, []),
        # A rule deleted since it matched: its result's foreign key is refused.
        RuleResult(inbox.account_id, refused, "deleted-rule", ExecutedRuleStatus.APPLIED, []),
    ]

    record_first_results(results)

    with read_scope() as session:
        recorded = session.scalars(
            select(ExecutedRule.message_id).where(ExecutedRule.email_account_id == inbox.account_id)
        ).all()
    assert recorded == [kept.id]


def test_a_batch_whose_rule_is_deleted_mid_batch_still_counts_every_message(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = inbox.provider()
    subjects = {key: mail.get_message(key).subject for key in inbox_keys(inbox, 40)}
    newsletters = [key for key, subject in subjects.items() if "Newsletter" in subject]
    others = [key for key, subject in subjects.items() if "Newsletter" not in subject]
    keys = [newsletters[0], others[0], newsletters[1], others[1]]
    job_id = open_run(inbox, queued=4)
    real_get = MaildirProvider.get_message

    def deleting_the_rule_at_the_last(self: MaildirProvider, key: str) -> Any:
        if key == keys[-1]:
            with session_scope() as session:
                session.execute(delete(Rule).where(Rule.email_account_id == inbox.account_id))
        return real_get(self, key)

    monkeypatch.setattr(MaildirProvider, "get_message", deleting_the_rule_at_the_last)

    assert batch(workers(inbox, job_id, keys)) == ["done"] * 4

    # The newsletters were archived by the rule, whose results are then refused; the
    # others' results are recorded, and every message is counted.
    assert {newsletters[0], newsletters[1]} <= mail.folder_keys("Archive")
    with read_scope() as session:
        recorded = session.scalars(
            select(ExecutedRule.message_id).where(ExecutedRule.email_account_id == inbox.account_id)
        ).all()
    assert sorted(recorded) == sorted([others[0], others[1]])
    assert run_state(job_id) == (4, 0, BulkJobStatus.COMPLETED)
