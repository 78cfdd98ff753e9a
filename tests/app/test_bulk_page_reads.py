"""What a bulk fetcher page and a batch of workers read (`bulk_records.page_read`,
`handled_or_counted`, `worker_read`, `counted_in_run`), on both databases the app runs
on: one statement each, the same answers; and on PostgreSQL, one index entry a message
whatever the planner knows of the tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from bridge.store.db import engine, session_scope
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
from tests.support.query_plans import rows_read, sent_statements


@dataclass(frozen=True)
class Run:
    account_id: str
    job_id: str


@pytest.fixture(params=["postgresql", "sqlite"])
def run(request: pytest.FixtureRequest, configure: Callable[..., Any], tmp_path: Path) -> Run:
    """A RUNNING bulk job of a new account."""
    row = running_run(request.param, configure, tmp_path)
    return Run(row.email_account_id, row.id)


@pytest.fixture
def postgresql_run(configure: Callable[..., Any], tmp_path: Path) -> Run:
    """A RUNNING bulk job of a new account, on PostgreSQL."""
    row = running_run("postgresql", configure, tmp_path)
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


def test_a_batch_reads_its_run_its_account_and_which_messages_have_a_result(run: Run) -> None:
    add_result(run.account_id, "has-one", utcnow())

    read = records.worker_read({run.job_id}, run.account_id, ["has-one", "new"])

    assert set(read.runs) == {run.job_id}
    assert read.account is not None and read.account.id == run.account_id
    assert read.with_rule_result == {"has-one"}


def test_a_batch_of_an_unknown_run_reads_no_run(run: Run) -> None:
    read = records.worker_read({"no-such-run"}, run.account_id, ["new"])

    assert read.runs == {}


def test_a_forced_batch_reads_which_of_its_messages_the_run_counted(run: Run) -> None:
    records.count_many(run.job_id, {"done": BulkItemStatus.PROCESSED})

    assert records.counted_in_run(run.job_id, ["done", "new"]) == {"done"}


def test_page_and_batch_reads_probe_one_index_entry_a_message_on_tables_never_analyzed(
    postgresql_run: Run,
) -> None:
    """A run's own rows grow faster than the statistics: PostgreSQL, taking the run (or
    the account) for a few rows, would read all of them for each page."""
    run, grown = postgresql_run, 2_000
    records.count_many(run.job_id, {f"m{n}": BulkItemStatus.PROCESSED for n in range(grown)})
    with session_scope() as session:
        session.execute(
            insert(ExecutedRule), [_result_row(run.account_id, n) for n in range(grown)]
        )
    page = [f"m{n}" for n in range(0, grown, 100)] + ["new-1", "new-2"]

    with sent_statements(engine()) as sent:
        records.handled_or_counted(run.account_id, run.job_id, page, utcnow())
        records.worker_read({run.job_id}, run.account_id, page)
        records.counted_in_run(run.job_id, page)

    assert len(sent) == 3
    for each in sent:
        read = rows_read(engine(), each.statement, each.parameters)
        assert read.get("bulk_process_item", 0) <= len(page), (each.statement, read)
        assert read.get("executed_rule", 0) <= len(page), (each.statement, read)


def _result_row(account_id: str, n: int) -> dict[str, Any]:
    return {
        "id": f"r{n}",
        "email_account_id": account_id,
        "message_id": f"m{n}",
        "thread_id": f"m{n}",
        "status": ExecutedRuleStatus.NO_MATCH,
        "created_at": utcnow() - timedelta(days=1),
    }


def test_a_batch_asking_about_no_message_still_reads_its_run_and_account(run: Run) -> None:
    read = records.worker_read({run.job_id}, run.account_id, [])

    assert set(read.runs) == {run.job_id} and read.account is not None
    assert read.with_rule_result == set()
