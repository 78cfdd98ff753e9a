"""The sweep finds what no provider is delivering, and only one sweep runs at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bridge.metrics import last_sweep_success
from bridge.store.db import exclusive
from tasks import scheduled_actions
from tasks.models import ActionType, SchedulingStatus, utcnow
from tests.conftest import Mailbox
from tests.support.actions import insert_action, set_columns

GRACE = timedelta(seconds=600)  # SWEEP_GRACE_SECONDS' default


def scheduled_row(mailbox: Mailbox, due_ago: timedelta, enqueued_ago: timedelta) -> Any:
    row = insert_action(
        mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0], scheduled_for=utcnow() - due_ago
    )
    enqueued_at = utcnow() - enqueued_ago
    set_columns(row.id, scheduling_status=SchedulingStatus.SCHEDULED, last_enqueued_at=enqueued_at)
    return row


def test_scheduled_row_within_its_grace_is_left_to_its_provider(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    scheduled_row(mailbox, due_ago=timedelta(minutes=5), enqueued_ago=timedelta(hours=1))
    assert scheduled_actions.sweep().enqueued == 0
    assert fake_inngest.events == []


def test_scheduled_row_overdue_past_its_grace_is_enqueued_again(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    row = scheduled_row(
        mailbox, due_ago=GRACE + timedelta(minutes=1), enqueued_ago=timedelta(hours=1)
    )
    assert scheduled_actions.sweep().enqueued == 1
    (event,) = fake_inngest.events
    # A fresh event id: the first one may still be remembered, and would start no run.
    assert event["id"].startswith(f"scheduled-action-{row.id}-sweep-")


def test_row_enqueued_again_recently_is_not_enqueued_twice(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    scheduled_row(mailbox, due_ago=GRACE * 3, enqueued_ago=timedelta(minutes=1))
    assert scheduled_actions.sweep().enqueued == 0


def test_never_scheduled_due_row_is_enqueued_at_once(mailbox: Mailbox, fake_inngest: Any) -> None:
    insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    assert scheduled_actions.sweep().enqueued == 1
    assert len(fake_inngest.events) == 1


def test_only_one_sweep_runs_at_a_time(mailbox: Mailbox, fake_inngest: Any) -> None:
    insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    with exclusive("scheduled-actions.sweep") as held:
        assert held
        report = scheduled_actions.sweep()
    assert (report.ran, report.enqueued, fake_inngest.events) == (False, 0, [])
    assert scheduled_actions.sweep().enqueued == 1


def test_a_due_row_whose_publish_fails_is_counted_failed_not_enqueued(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    fake_inngest.down = True

    report = scheduled_actions.sweep()

    assert (report.enqueued, report.failed) == (0, 1)
    found = scheduled_actions.get(row.id)
    assert found is not None and found.scheduling_status is SchedulingStatus.FAILED


def test_a_sweep_that_could_not_publish_is_not_recorded_as_a_success(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    before = last_sweep_success()
    fake_inngest.down = True

    scheduled_actions.sweep()

    assert last_sweep_success() == before
    fake_inngest.down = False
    scheduled_actions.sweep()  # the next sweep publishes it: a success
    assert last_sweep_success() != before
