"""Scheduled action rows: recording a new action PENDING (refusing one that could not
be performed), reading one, and cancelling one.

Every state change is a conditional UPDATE or a unique insert, so doing either twice
has one effect: an `action_id` recorded already is returned as it is, and only the
call that moves a row from PENDING to CANCELLED cancels it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from bridge.outcome import PermanentError
from bridge.store.db import rows_changed, session_scope
from tasks.mail.accounts import mail_provider_for
from tasks.mail.maildir import MaildirProvider
from tasks.mail.maildir_files import folder_name_problem
from tasks.mail.port import MessageNotFound
from tasks.models import (
    ActionStatus,
    ActionType,
    EmailAccount,
    ScheduledAction,
    SchedulingStatus,
    new_id,
)


class ActionRefused(ValueError):
    """schedule() will not record this action; `field` names the argument at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# What performing each action type needs (any one of the fields), as `jobbridge accounts
# import` requires of a rule's action: refused when scheduled, not failed when due.
_NEEDED_FIELDS = {
    ActionType.LABEL: ("label", "label_id"),
    ActionType.MOVE_FOLDER: ("folder_name", "folder_id"),
    ActionType.SEND_EMAIL: ("to",),
    ActionType.FORWARD: ("to",),
}


# How a missing field is named to whoever scheduled the action (a CLI option, a call).
_NEEDED_WORDS = {"label": "a label", "folder_name": "a folder", "to": "a recipient"}


def _require_aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("scheduled_for must be timezone-aware (UTC); a naive time is ambiguous")
    return when


def _refuse_too_long(fields: dict[str, Any]) -> None:
    """ActionRefused for a value longer than its column holds: PostgreSQL would refuse
    the row with an error naming no field, and SQLite would keep it whole."""
    columns = ScheduledAction.__table__.columns
    for name, value in fields.items():
        length = getattr(columns[name].type, "length", None) if name in columns else None
        if isinstance(value, str) and length is not None and len(value) > length:
            raise ActionRefused(name, f"{len(value)} characters, more than the {length} kept")


def record(
    *,
    email_account_id: str,
    action_type: ActionType,
    message_id: str,
    thread_id: str,
    scheduled_for: datetime,
    executed_rule_id: str | None = None,
    action_id: str | None = None,
    verify_message: bool = False,
    **action_fields: Any,
) -> tuple[ScheduledAction, bool]:
    """Insert the action PENDING, not yet published: (row, True). With an `action_id`
    already recorded, (that row, False) and nothing written.

    Raises ActionRefused, writing nothing, as schedule() documents.
    """
    if action_id is not None and (existing := get(action_id)) is not None:
        return existing, False
    needed = _NEEDED_FIELDS.get(action_type, ())
    if needed and not any(action_fields.get(name) for name in needed):
        what = _NEEDED_WORDS.get(needed[0], needed[0])
        raise ActionRefused(needed[0], f"a {action_type.value} action needs {what}")
    _refuse_too_long({"message_id": message_id, "thread_id": thread_id, **action_fields})
    if verify_message:
        with session_scope() as session:
            account = session.get(EmailAccount, email_account_id)
        if account is None:
            raise ActionRefused("email_account_id", f"no email account {email_account_id}")
        try:
            mail = mail_provider_for(account)
        except PermanentError:
            mail = None  # no adapter to ask (yet): the execution will find out
        folder = action_fields.get("folder_name")  # checked where the mail is a Maildir
        if (
            isinstance(mail, MaildirProvider)
            and folder
            and (problem := folder_name_problem(folder))
        ):
            raise ActionRefused("folder_name", problem)
        if mail is not None:
            try:
                mail.get_message(message_id)
            except MessageNotFound:
                raise ActionRefused(
                    "message_id", f"{account.email} has no message {message_id}"
                ) from None
    row = ScheduledAction(
        id=action_id or new_id(),
        email_account_id=email_account_id,
        action_type=action_type,
        message_id=message_id,
        thread_id=thread_id,
        scheduled_for=_require_aware(scheduled_for),
        executed_rule_id=executed_rule_id,
        status=ActionStatus.PENDING,
        scheduling_status=SchedulingStatus.PENDING,
        **action_fields,
    )
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        if action_id is None or (existing := get(action_id)) is None:
            raise
        return existing, False  # a concurrent duplicate created it first
    return row, True


def get(action_id: str) -> ScheduledAction | None:
    with session_scope() as session:
        return session.get(ScheduledAction, action_id)


def mark_cancelled(action_id: str) -> ScheduledAction | None:
    """PENDING -> CANCELLED: the row, if this call cancelled it (its provider still holds
    the delivery: `scheduled_actions.cancel` asks it to drop it)."""
    with session_scope() as session:
        won = (
            rows_changed(
                session,
                update(ScheduledAction)
                .where(
                    ScheduledAction.id == action_id,
                    ScheduledAction.status == ActionStatus.PENDING,
                )
                .values(status=ActionStatus.CANCELLED),
            )
            == 1
        )
        return session.get(ScheduledAction, action_id) if won else None
