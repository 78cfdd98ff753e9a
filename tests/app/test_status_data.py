"""What the inbox app tells the `/status` page (tasks.status_data): which provider ran
each action (recorded by the claim), executions per minute by that provider, the last
hour's failures and the actions stuck EXECUTING."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, insert

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome
from bridge.store.db import engine
from tasks.audit import audit
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tasks.scheduled_action_records import get
from tasks.scheduled_actions import execute_scheduled_action
from tasks.schema import upgrade
from tasks.status_data import stuck_executing
from tests.conftest import Mailbox
from tests.support.actions import insert_action, mark_claimed, set_columns
from tests.support.status_seed import HOSTILE_ERROR, seed_migration


def test_the_provider_whose_delivery_ran_an_action_is_recorded(mailbox: Mailbox) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])

    result = run_job(
        execute_scheduled_action, {"scheduledActionId": row.id}, Delivery("inngest", "run-1", 0)
    )

    done = get(row.id)
    assert result.outcome is Outcome.DONE
    assert done is not None and done.status is ActionStatus.COMPLETED
    assert done.executed_provider == "inngest"


def test_a_failure_names_the_provider_that_ran_it(mailbox: Mailbox) -> None:
    row = insert_action("no-such-account", ActionType.ARCHIVE, mailbox.keys[0])

    result = run_job(
        execute_scheduled_action, {"scheduledActionId": row.id}, Delivery("qstash", "msg_1", 0)
    )

    failed = get(row.id)
    assert result.outcome is Outcome.FAILED
    assert failed is not None and failed.status is ActionStatus.FAILED
    assert (failed.executed_provider, failed.error) == (
        "qstash",
        "unknown email account no-such-account",
    )


def test_executions_are_counted_per_minute_by_provider() -> None:
    seeded = seed_migration(pending={})

    with engine().connect() as connection:
        series = audit.activity(connection, seeded.now, 3).series

    assert series.minutes == 180 and series.start.second == 0
    assert {key: series.total(key) for key in series.counts} == seeded.executed
    assert series.counts["qstash"][0] == 8 and series.counts["qstash"][-1] == 0
    assert series.counts["inngest"][0] == 0 and series.counts["inngest"][-1] == 8


def test_an_execution_older_than_the_window_is_left_out(mailbox: Mailbox) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    set_columns(
        row.id,
        status=ActionStatus.COMPLETED,
        executed_at=utcnow() - timedelta(hours=3, minutes=1),
        executed_provider="qstash",
    )

    with engine().connect() as connection:
        series = audit.activity(connection, utcnow(), 3).series

    assert series.counts == {}


def test_failures_and_stuck_rows_are_listed_with_their_details() -> None:
    seeded = seed_migration(pending={})

    with engine().connect() as connection:
        failures, stuck = audit.activity(connection, seeded.now, 3).tables

    assert failures.total == 1
    assert failures.rows[0][1:5] == (seeded.failed_id, "LABEL", "inngest", "5")
    assert failures.rows[0][5] == HOSTILE_ERROR
    assert stuck.total == 1 and stuck.rows[0][0] == seeded.stuck_id


def test_an_executing_row_whose_lease_runs_is_not_stuck(mailbox: Mailbox) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    mark_claimed(row.id, "inngest:run-live", utcnow() + timedelta(minutes=1))

    with engine().connect() as connection:
        _, stuck = audit.activity(connection, utcnow(), 1).tables

    assert (stuck.total, stuck.rows) == (0, ())


def test_sqlite_counts_per_minute_too(tmp_path: Path) -> None:
    """`make dev`'s database: minutes are grouped from SQLite's stored text."""
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    upgrade(url)
    now = utcnow()
    rows = [
        {
            "id": f"a{n}",
            "email_account_id": "acct",
            "action_type": ActionType.ARCHIVE,
            "message_id": "m",
            "thread_id": "t",
            "scheduled_for": now,
            "status": ActionStatus.COMPLETED,
            "executed_at": now - timedelta(minutes=minutes_ago),
            "executed_provider": provider,
        }
        for n, (minutes_ago, provider) in enumerate([(0, "inngest"), (0, "inngest"), (2, "qstash")])
    ]
    sqlite = create_engine(url)
    with sqlite.begin() as connection:
        connection.execute(insert(ScheduledAction), rows)

    with sqlite.connect() as connection:
        series = audit.activity(connection, now, 1).series
    sqlite.dispose()

    assert series.counts["inngest"][-1] == 2 and series.counts["qstash"][-3] == 1
    assert (series.total("inngest"), series.total("qstash")) == (2, 1)


def _executing(action_id: str, lease: datetime | None) -> dict[str, object]:
    return {
        "id": action_id,
        "email_account_id": "acct",
        "action_type": ActionType.ARCHIVE,
        "message_id": "m",
        "thread_id": "t",
        "scheduled_for": utcnow(),
        "status": ActionStatus.EXECUTING,
        "claimed_by": f"qstash:{action_id}",
        "lease_expires_at": lease,
    }


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_stuck_rows_list_a_null_lease_first_then_the_oldest_lease(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'dev.db'}"
        upgrade(url)
        database: Engine = create_engine(url)
    else:
        database = engine()
    now = utcnow()
    rows = [
        _executing("a-minute-ago", now - timedelta(minutes=1)),
        _executing("never-leased", None),
        _executing("an-hour-ago", now - timedelta(hours=1)),
    ]
    with database.begin() as connection:
        connection.execute(insert(ScheduledAction), rows)

    with database.connect() as connection:
        listed = stuck_executing(connection, now)
    if backend == "sqlite":
        database.dispose()

    assert [row[0] for row in listed.rows] == ["never-leased", "an-hour-ago", "a-minute-ago"]
