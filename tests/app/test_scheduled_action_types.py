"""Each action type, executed by the job body, changes the Maildir as its name says."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, utcnow
from tests.conftest import Mailbox
from tests.support.actions import insert_action


def execute_now(mailbox: Mailbox, action_type: ActionType, **fields: Any) -> Any:
    row = insert_action(
        fields.pop("account_id", mailbox.account_id),
        action_type,
        fields.pop("message_id", mailbox.keys[0]),
        **fields,
    )
    spec = scheduled_actions.execute_scheduled_action
    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("test", row.id, 0))
    return result, scheduled_actions.get(row.id)


def test_archive(mailbox: Mailbox) -> None:
    result, row = execute_now(mailbox, ActionType.ARCHIVE)
    assert (result.outcome, row.status) == (Outcome.DONE, ActionStatus.COMPLETED)
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}


def test_label(mailbox: Mailbox) -> None:
    execute_now(mailbox, ActionType.LABEL, label="Follow up")
    assert mailbox.provider().get_message(mailbox.keys[0]).labels == {"Follow up"}


def test_mark_read(mailbox: Mailbox) -> None:
    execute_now(mailbox, ActionType.MARK_READ)
    assert mailbox.provider().get_message(mailbox.keys[0]).read is True


def test_move_folder(mailbox: Mailbox) -> None:
    execute_now(mailbox, ActionType.MOVE_FOLDER, folder_name="Projects")
    assert mailbox.folder_keys("Projects") == {mailbox.keys[0]}


UP_AND_OUT = "/".join(["..", "..", "escape"])


@pytest.mark.parametrize("folder", [UP_AND_OUT, "a/b", "..", "."])
def test_a_move_to_a_folder_name_that_leads_out_of_the_maildir_fails_for_good(
    mailbox: Mailbox, folder: str
) -> None:
    before = sorted(path for path in mailbox.path.parent.rglob("*"))

    result, row = execute_now(mailbox, ActionType.MOVE_FOLDER, folder_name=folder)

    assert (result.outcome, row.status) == (Outcome.FAILED, ActionStatus.FAILED)
    assert "has no '/' and is more than dots" in row.error
    assert sorted(path for path in mailbox.path.parent.rglob("*")) == before


def test_scheduling_a_move_to_such_a_folder_on_a_maildir_account_is_refused(
    mailbox: Mailbox,
) -> None:
    with pytest.raises(scheduled_actions.ActionRefused, match="has no '/'") as refused:
        scheduled_actions.schedule(
            email_account_id=mailbox.account_id,
            action_type=ActionType.MOVE_FOLDER,
            message_id=mailbox.keys[0],
            thread_id=mailbox.keys[0],
            scheduled_for=utcnow(),
            verify_message=True,
            folder_name=UP_AND_OUT,
        )

    assert refused.value.field == "folder_name"


def test_reply_goes_to_the_sender_in_the_same_thread(mailbox: Mailbox) -> None:
    _, row = execute_now(mailbox, ActionType.REPLY, content="Thanks!")
    mail = mailbox.provider()
    original, reply = mail.get_message(mailbox.keys[0]), mail.get_message(row.executed_action_id)
    assert (reply.to, reply.subject) == (original.sender, f"Re: {original.subject}")
    assert reply.thread_id == original.message_id_header


def test_send_email(mailbox: Mailbox) -> None:
    _, row = execute_now(mailbox, ActionType.SEND_EMAIL, to="x@example.test", subject="Hi")
    sent = mailbox.provider().get_message(row.executed_action_id)
    assert (sent.folder, sent.to, sent.subject) == ("Sent", "x@example.test", "Hi")


def test_forward_includes_the_original(mailbox: Mailbox) -> None:
    _, row = execute_now(mailbox, ActionType.FORWARD, to="boss@example.test")
    forwarded = mailbox.provider().get_message(row.executed_action_id)
    assert forwarded.subject.startswith("Fwd: ")
    assert "Forwarded message" in forwarded.body


def test_message_that_no_longer_exists_completes_without_action(mailbox: Mailbox) -> None:
    result, row = execute_now(mailbox, ActionType.ARCHIVE, message_id="gone")
    assert (result.outcome, row.status) == (Outcome.DONE, ActionStatus.COMPLETED)
    assert "no longer exists" in result.detail


def test_unknown_account_fails_permanently(mailbox: Mailbox) -> None:
    result, row = execute_now(mailbox, ActionType.ARCHIVE, account_id="nobody")
    assert (result.outcome, row.status) == (Outcome.FAILED, ActionStatus.FAILED)
    assert "unknown email account" in row.error


def test_action_missing_its_field_fails_permanently(mailbox: Mailbox) -> None:
    result, row = execute_now(mailbox, ActionType.SEND_EMAIL)
    assert (result.outcome, row.status) == (Outcome.FAILED, ActionStatus.FAILED)
    assert "recipient" in row.error


def test_cancelled_action_is_skipped(mailbox: Mailbox) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    assert scheduled_actions.cancel(row.id) is True
    assert scheduled_actions.cancel(row.id) is False
    spec = scheduled_actions.execute_scheduled_action
    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("test", "d", 0))
    assert result.outcome is Outcome.SKIPPED
    assert mailbox.folder_keys("Archive") == set()


def test_missing_row_is_skipped() -> None:
    spec = scheduled_actions.execute_scheduled_action
    result = run_job(spec, {"scheduledActionId": "missing"}, Delivery("test", "d", 0))
    assert (result.outcome, result.detail) == (Outcome.SKIPPED, "no such scheduled action")


def test_early_delivery_is_retried_when_due(mailbox: Mailbox) -> None:
    from datetime import timedelta

    row = insert_action(
        mailbox.account_id,
        ActionType.ARCHIVE,
        mailbox.keys[0],
        scheduled_for=utcnow() + timedelta(minutes=10),
    )
    spec = scheduled_actions.execute_scheduled_action
    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("test", "d", 0))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == pytest.approx(600, abs=5)
    after = scheduled_actions.get(row.id)
    assert after is not None
    assert after.status is ActionStatus.PENDING


@pytest.mark.parametrize(
    ("action_type", "field", "words"),
    [
        (ActionType.MOVE_FOLDER, "folder_name", "a folder"),
        (ActionType.LABEL, "label", "a label"),
        (ActionType.FORWARD, "to", "a recipient"),
    ],
)
def test_an_action_without_what_its_type_needs_is_refused_in_words(
    mailbox: Mailbox, action_type: ActionType, field: str, words: str
) -> None:
    with pytest.raises(scheduled_actions.ActionRefused) as refused:
        scheduled_actions.schedule(
            email_account_id=mailbox.account_id,
            action_type=action_type,
            message_id=mailbox.keys[0],
            thread_id=mailbox.keys[0],
            scheduled_for=utcnow(),
        )

    assert (refused.value.field, str(refused.value)) == (
        field,
        f"a {action_type.value} action needs {words}",
    )
