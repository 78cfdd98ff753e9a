"""What the scheduled-action sweep finds to do: EXECUTING rows whose lease expired are
put back to PENDING, and due PENDING rows nobody is delivering are picked for publishing
again; expired delivery records are pruned on the way.

The publishing itself, under the sweep's lock, is `tasks.scheduled_actions.sweep`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from bridge.store.db import rows_changed, session_scope
from bridge.store.housekeeping import prune_expired
from config import get_settings
from tasks.models import ActionStatus, ScheduledAction, SchedulingStatus


@dataclass(frozen=True)
class SweepReport:
    reclaimed: int
    enqueued: int  # due rows published
    pruned_deliveries: int
    ran: bool = True  # False: another sweep held the lock, so this one did nothing
    # Due rows whose publish failed (left FAILED, with the error; the next sweep tries
    # again); a sweep with any is not a success (the sweep-not-running alert watches).
    failed: int = 0


@dataclass(frozen=True)
class Found:
    """One pass over the table: rows put back, rows to publish, delivery records pruned."""

    reclaimed: int
    due: list[ScheduledAction]
    pruned: int


def find_work(now: datetime, limit: int) -> Found:
    """Put expired EXECUTING rows back, and pick up to `limit` due PENDING rows that are
    not scheduled with a provider, or were enqueued longer than the grace ago."""
    grace = timedelta(seconds=get_settings().sweep_grace_seconds)
    with session_scope() as session:
        reclaimed = rows_changed(
            session,
            update(ScheduledAction)
            .where(ScheduledAction.claim_lapsed(now))
            .values(
                status=ActionStatus.PENDING,
                lease_expires_at=None,
                claimed_by=None,
                claim_attempt=None,
                claim_token=None,
                scheduling_status=SchedulingStatus.PENDING,
            ),
        )
        lost = and_(
            ScheduledAction.scheduled_for < now - grace,
            or_(
                ScheduledAction.last_enqueued_at.is_(None),
                ScheduledAction.last_enqueued_at < now - grace,
            ),
        )
        due = session.scalars(
            select(ScheduledAction)
            .where(
                ScheduledAction.status == ActionStatus.PENDING,
                ScheduledAction.scheduled_for <= now,
                or_(ScheduledAction.scheduling_status != SchedulingStatus.SCHEDULED, lost),
            )
            .order_by(ScheduledAction.scheduled_for)
            .limit(limit)
        ).all()
        pruned = prune_expired(session, now)
    return Found(reclaimed, list(due), pruned)
