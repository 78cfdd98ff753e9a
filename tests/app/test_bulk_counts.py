"""A bulk run's counts, on both databases the app runs on (PostgreSQL and SQLite, the
embedded default): one transaction a count, the same rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks.jobs import bulk_process
from tasks.jobs import bulk_records as records
from tasks.models import BulkItemStatus, BulkJobStatus
from tests.support.bulk_runs import running_run


@pytest.fixture(params=["postgresql", "sqlite"])
def run_of_two(
    request: pytest.FixtureRequest, configure: Callable[..., Any], tmp_path: Path
) -> str:
    """A RUNNING bulk job with two messages queued and every page fetched: its id."""
    row = running_run(
        request.param, configure, tmp_path, emails_queued=2, pages_fetched=1, all_queued=True
    )
    return row.id


def _counts(job_id: str) -> tuple[int, int, BulkJobStatus]:
    row = bulk_process.get(job_id)
    assert row is not None
    return row.processed, row.failed, row.status


def test_a_message_counted_twice_counts_once(run_of_two: str) -> None:
    records.count(run_of_two, "m1", BulkItemStatus.PROCESSED)
    records.count(run_of_two, "m1", BulkItemStatus.PROCESSED)
    records.count(run_of_two, "m1", BulkItemStatus.FAILED)
    assert _counts(run_of_two) == (1, 0, BulkJobStatus.RUNNING)


def test_the_last_message_counted_completes_the_run(run_of_two: str) -> None:
    records.count(run_of_two, "m1", BulkItemStatus.PROCESSED)
    records.count(run_of_two, "m2", BulkItemStatus.FAILED)
    row = bulk_process.get(run_of_two)
    assert row is not None
    assert (row.processed, row.failed, row.status) == (1, 1, BulkJobStatus.COMPLETED)
    assert row.completed_at is not None


def test_a_count_for_another_run_leaves_this_one_alone(run_of_two: str) -> None:
    records.count("no-such-run", "m1", BulkItemStatus.PROCESSED)
    assert _counts(run_of_two) == (0, 0, BulkJobStatus.RUNNING)
