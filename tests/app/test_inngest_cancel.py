"""Cancelling a scheduled action also cancels its Inngest run, asleep until the action's
time: the execute function is registered to cancel on its own cancel event, matched on
the action id, and cancelling an action Inngest holds sends that event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, utcnow
from tests.conftest import Mailbox
from tests.support import env
from tests.support.fake_inngest import FakeInngest
from tests.support.inngest_sync import synced_functions

EXECUTE = scheduled_actions.execute_scheduled_action
CANCEL_EVENT = "inbox-zero/scheduled-action.execute.cancelled"
CANCEL_ON = [
    {
        "event": CANCEL_EVENT,
        "if": "event.data.scheduledActionId == async.data.scheduledActionId",
    }
]


def schedule_tomorrow(mailbox: Mailbox, key: str) -> Any:
    return scheduled_actions.schedule(
        email_account_id=mailbox.account_id,
        action_type=ActionType.ARCHIVE,
        message_id=key,
        thread_id=key,
        scheduled_for=utcnow() + timedelta(days=1),
    )


def trigger_of(inngest: FakeInngest, action_id: str) -> dict[str, Any]:
    (event,) = [
        e
        for e in inngest.events
        if e["name"] == EXECUTE.event and e["data"]["scheduledActionId"] == action_id
    ]
    return event


def test_the_execute_function_is_registered_to_cancel_on_its_action_id(
    web: str, inngest_api: Any
) -> None:
    function = synced_functions(web, inngest_api)[f"inbox-zero-{EXECUTE.fn_id}"]

    assert [{k: rule[k] for k in ("event", "if")} for rule in function["cancel"]] == CANCEL_ON


def test_cancelling_an_action_inngest_holds_cancels_its_run_and_no_other(
    router: Any, configure: Any, mailbox: Mailbox
) -> None:
    configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router)
    cancelled = schedule_tomorrow(mailbox, mailbox.keys[0])
    kept = schedule_tomorrow(mailbox, mailbox.keys[1])

    assert scheduled_actions.cancel(cancelled.id) is True

    assert scheduled_actions.get(cancelled.id).status is ActionStatus.CANCELLED  # type: ignore[union-attr]
    assert inngest.cancels(CANCEL_ON, trigger_of(inngest, cancelled.id))
    assert not inngest.cancels(CANCEL_ON, trigger_of(inngest, kept.id))


def test_an_action_cancelled_twice_sends_one_cancel_event(
    router: Any, configure: Any, mailbox: Mailbox
) -> None:
    configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router)
    row = schedule_tomorrow(mailbox, mailbox.keys[0])

    assert [scheduled_actions.cancel(row.id) for _ in range(2)] == [True, False]

    assert [e["data"] for e in inngest.events if e["name"] == CANCEL_EVENT] == [
        {"scheduledActionId": row.id}
    ]


def test_a_failed_cancel_event_still_leaves_the_action_cancelled(
    router: Any, configure: Any, mailbox: Mailbox
) -> None:
    configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router)
    row = schedule_tomorrow(mailbox, mailbox.keys[0])
    inngest.down = True

    assert scheduled_actions.cancel(row.id) is True

    assert scheduled_actions.get(row.id).status is ActionStatus.CANCELLED  # type: ignore[union-attr]
