"""Contract: a scheduled action has the same effect whichever provider delivers it.

Each case schedules the same ARCHIVE one second ahead through the real enqueue
path, lets its provider deliver it the way that provider does, and compares the
database row and the Maildir afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, SchedulingStatus, utcnow
from tests.conftest import Mailbox
from tests.support.fake_qstash import deliver_until_final
from tests.support.wait import wait_for, wait_until_time


@pytest.fixture(params=["maildir", "imap", "gmail", "graph"])
def mailbox(request: pytest.FixtureRequest, mailbox: Mailbox) -> Any:
    """Each provider's case on a Maildir folder, on a real IMAP server (Dovecot), and on
    a Gmail and a Microsoft 365 account (their API doubles)."""
    if request.param == "maildir":
        return mailbox
    return request.getfixturevalue(f"{request.param}_mailbox")


def schedule_archive(mailbox: Mailbox, seconds_ahead: float = 1.0) -> Any:
    return scheduled_actions.schedule(
        email_account_id=mailbox.account_id,
        action_type=ActionType.ARCHIVE,
        message_id=mailbox.keys[0],
        thread_id=mailbox.keys[0],
        scheduled_for=utcnow() + timedelta(seconds=seconds_ahead),
    )


def completed(action_id: str) -> Any:
    row = scheduled_actions.get(action_id)
    return row if row is not None and row.status is ActionStatus.COMPLETED else None


def final_state(mailbox: Mailbox, action_id: str) -> dict[str, Any]:
    row = wait_for(lambda: completed(action_id), timeout=30, what="the action to complete")
    return {
        "status": row.status,
        "executed_after_due": row.executed_at >= row.scheduled_for,
        "error": row.error,
        "maildir": mailbox.snapshot(),
    }


def expected_state(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "status": ActionStatus.COMPLETED,
        "executed_after_due": True,
        "error": None,
        "maildir": {
            "INBOX": [(key, False, []) for key in sorted(mailbox.keys[1:])],
            "Archive": [(mailbox.keys[0], False, [])],
        },
    }


def test_celery_worker_delivers_scheduled_archive(mailbox: Mailbox, worker: Any) -> None:
    row = schedule_archive(mailbox)
    assert (row.scheduled_provider, row.scheduling_status) == ("celery", SchedulingStatus.SCHEDULED)
    assert final_state(mailbox, row.id) == expected_state(mailbox)


def test_inngest_sleeps_then_delivers_scheduled_archive(
    mailbox: Mailbox, web: str, fake_inngest: Any
) -> None:
    row = schedule_archive(mailbox)
    (event,) = fake_inngest.events
    assert event["name"] == "inbox-zero/scheduled-action.execute"
    assert event["id"] == f"scheduled-action-{row.id}"
    assert event["data"]["scheduledActionId"] == row.id

    run = fake_inngest.run(web, "scheduled-action-execute", event)

    assert run.status == 200 and run.output["outcome"] == "done"
    assert [wake.timestamp() for wake in run.sleeps] == [
        pytest.approx(row.scheduled_for.timestamp(), abs=1)
    ]
    assert final_state(mailbox, row.id) == expected_state(mailbox)


def test_qstash_delivers_scheduled_archive_not_before_its_time(
    mailbox: Mailbox, web: str, fake_qstash: Any
) -> None:
    row = schedule_archive(mailbox)
    (message,) = fake_qstash.messages
    assert message.route == "/api/scheduled-actions/execute"
    assert message.headers["upstash-deduplication-id"] == f"scheduled-action-{row.id}"
    assert message.not_before >= row.scheduled_for.timestamp()

    response = deliver_until_final(message, web)

    assert response.status_code == 200, response.text
    assert final_state(mailbox, row.id) == expected_state(mailbox)


def test_direct_http_delivers_scheduled_archive_through_the_sweep(
    mailbox: Mailbox, web: str, configure: Any
) -> None:
    configure(INTERNAL_API_URL=web, JOB_PROVIDER="http")
    row = schedule_archive(mailbox)
    # Direct HTTP cannot delay: the row waits, unscheduled, for the sweep.
    assert (row.status, row.scheduling_status) == (ActionStatus.PENDING, SchedulingStatus.PENDING)

    wait_until_time(row.scheduled_for.timestamp())
    report = scheduled_actions.sweep()

    assert report.enqueued == 1
    assert final_state(mailbox, row.id) == expected_state(mailbox)
