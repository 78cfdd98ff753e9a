"""What a bulk fetcher page reads (`bulk_records.page_read`, `handled_or_counted`), on
both databases the app runs on: one statement each, the same answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.store.db import session_scope
from tasks.jobs import bulk_records as records
from tasks.models import (
    BulkItemStatus,
    ExecutedRule,
    ExecutedRuleStatus,
    Sender,
    SenderStatus,
    utcnow,
)
from tests.support.bulk_runs import running_run


@dataclass(frozen=True)
class Run:
    account_id: str
    job_id: str


@pytest.fixture(params=["postgresql", "sqlite"])
def run(request: pytest.FixtureRequest, configure: Callable[..., Any], tmp_path: Path) -> Run:
    """A RUNNING bulk job of a new account."""
    row = running_run(request.param, configure, tmp_path)
    return Run(row.email_account_id, row.id)


def add_senders(account_id: str, **statuses: SenderStatus) -> None:
    with session_scope() as session:
        for local, status in statuses.items():
            session.add(
                Sender(email_account_id=account_id, email=f"{local}@example.test", status=status)
            )


def add_result(account_id: str, message_id: str, created_at: Any) -> None:
    with session_scope() as session:
        session.add(
            ExecutedRule(
                email_account_id=account_id,
                message_id=message_id,
                thread_id=message_id,
                status=ExecutedRuleStatus.NO_MATCH,
                created_at=created_at,
            )
        )


def test_a_page_reads_its_run_its_account_and_only_the_ignored_senders(run: Run) -> None:
    add_senders(run.account_id, spam=SenderStatus.IGNORED, ads=SenderStatus.IGNORED)
    add_senders(run.account_id, friend=SenderStatus.NONE)

    read = records.page_read(run.job_id, run.account_id)

    assert read.run is not None and read.run.id == run.job_id
    assert read.account is not None and read.account.id == run.account_id
    assert read.ignored_senders == {"spam@example.test", "ads@example.test"}


def test_a_page_of_an_account_ignoring_no_one_reads_no_senders(run: Run) -> None:
    read = records.page_read(run.job_id, run.account_id)

    assert read.run is not None and read.account is not None
    assert read.ignored_senders == set()


def test_a_page_of_an_unknown_run_reads_nothing(run: Run) -> None:
    read = records.page_read("no-such-run", run.account_id)

    assert (read.run, read.account, read.ignored_senders) == (None, None, set())


def test_a_page_of_an_unknown_account_reads_its_run_alone(run: Run) -> None:
    read = records.page_read(run.job_id, "no-such-account")

    assert read.run is not None and read.account is None


def test_handled_means_a_rule_result_from_before_the_run(run: Run) -> None:
    started = utcnow()
    add_result(run.account_id, "before", started - timedelta(minutes=1))
    add_result(run.account_id, "during", started + timedelta(seconds=1))
    records.count_many(run.job_id, {"during": BulkItemStatus.PROCESSED})

    handled, counted = records.handled_or_counted(
        run.account_id, run.job_id, ["before", "during", "new"], started
    )

    assert handled == {"before"}
    assert counted == {"during"}


def test_a_forced_page_asks_only_what_the_run_counted(run: Run) -> None:
    started = utcnow()
    add_result(run.account_id, "before", started - timedelta(minutes=1))
    records.count_many(run.job_id, {"before": BulkItemStatus.PROCESSED})

    handled, counted = records.handled_or_counted(run.account_id, run.job_id, ["before"], None)

    assert (handled, counted) == (set(), {"before"})
