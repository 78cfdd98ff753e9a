"""The claim of a due action and what happens around it: a run that claimed the row and
then fails before acting hands it back, a delivery that finds it handed back comes
again soon, and a lapsed claim is taken over whatever the row's scheduled time says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, utcnow
from tasks.scheduled_actions import HANDED_BACK_RETRY_SECONDS, execute_scheduled_action, get
from tests.conftest import Mailbox
from tests.support.actions import insert_action, mark_claimed, set_columns


def due_archive(mailbox: Mailbox) -> Any:
    return insert_action(
        mailbox.account_id,
        ActionType.ARCHIVE,
        mailbox.keys[0],
        scheduled_for=utcnow() - timedelta(seconds=1),
    )


def execute(action_id: str, delivery_id: str = "msg_claims") -> Any:
    delivery = Delivery(provider="qstash", delivery_id=delivery_id, attempt=0)
    return run_job(execute_scheduled_action, {"scheduledActionId": action_id}, delivery)


def test_a_run_that_cannot_read_the_account_after_its_claim_hands_the_row_back(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = due_archive(mailbox)

    def database_gone() -> Any:
        raise OperationalError("SELECT email_account", {}, Exception("connection lost"))

    monkeypatch.setattr(scheduled_actions, "read_scope", database_gone)
    result = execute(row.id)

    assert result.outcome is Outcome.RETRY
    after = get(row.id)
    assert after is not None
    assert (after.status, after.lease_expires_at) == (ActionStatus.PENDING, None)
    assert "connection lost" in (after.error or "")


def test_a_delivery_that_finds_the_row_handed_back_after_its_claim_comes_again_soon(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = due_archive(mailbox)
    # The claim lost to a run that has since handed the row back (PENDING, due).
    monkeypatch.setattr(scheduled_actions, "claim", lambda *_: None)

    result = execute(row.id)

    assert (result.outcome, result.retry_after) == (Outcome.RETRY, HANDED_BACK_RETRY_SECONDS)


def test_a_lapsed_claim_is_taken_over_even_if_the_row_says_it_is_not_due_yet(
    mailbox: Mailbox,
) -> None:
    # A host whose clock ran ahead claimed it early; its lease has lapsed by our clock.
    row = due_archive(mailbox)
    mark_claimed(row.id, "qstash:msg_dead", lease_expires_at=utcnow() - timedelta(seconds=5))
    set_columns(row.id, scheduled_for=utcnow() + timedelta(minutes=1))

    result = execute(row.id, delivery_id="msg_takeover")

    assert result.outcome is Outcome.DONE, result.detail
    final = get(row.id)
    assert final is not None
    assert final.status is ActionStatus.COMPLETED
