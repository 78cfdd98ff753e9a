"""Scheduled-action rows written straight to the database, for tests that deliver them
themselves and must not depend on any provider accepting a publish."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update

from bridge.store.db import session_scope
from tasks.models import ActionStatus, ActionType, ScheduledAction, SchedulingStatus, utcnow


def insert_action(
    account_id: str,
    action_type: ActionType,
    message_id: str,
    *,
    scheduled_for: datetime | None = None,
    **fields: Any,
) -> ScheduledAction:
    row = ScheduledAction(
        email_account_id=account_id,
        action_type=action_type,
        message_id=message_id,
        thread_id=message_id,
        scheduled_for=scheduled_for or utcnow(),
        status=ActionStatus.PENDING,
        scheduling_status=SchedulingStatus.PENDING,
        **fields,
    )
    with session_scope() as session:
        session.add(row)
    return row


def set_columns(action_id: str, **values: Any) -> None:
    """Write the row's columns as named, as no job would: the state a test starts from."""
    with session_scope() as session:
        session.execute(
            update(ScheduledAction).where(ScheduledAction.id == action_id).values(**values)
        )


def mark_claimed(
    action_id: str, claimed_by: str, lease_expires_at: datetime, token: str = "dead-run"
) -> None:
    """Leave the row as a delivery that claimed it and then died would have left it."""
    set_columns(
        action_id,
        status=ActionStatus.EXECUTING,
        claimed_by=claimed_by,
        claim_attempt=0,
        claim_token=token,
        lease_expires_at=lease_expires_at,
    )
