"""What `jobbridge audit` and `jobbridge status` count for this app (scheduled actions),
and what the `/status` page shows of their recent work (tasks.status_data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from bridge.activity import Activity
from config import Provider
from tasks.models import ActionStatus, ScheduledAction
from tasks.status_data import scheduled_action_activity, stuck

SETTLED_CHECKED = 200  # settled actions whose Inngest runs `audit` asks about, soonest first


@dataclass(frozen=True)
class ScheduledActionsAudit:
    by_status: dict[str, int]
    pending: int
    oldest_pending: datetime | None
    due_unexecuted: int
    stuck_executing: int
    # Where PENDING rows were last published (the `scheduled_provider` column): during a
    # migration the "qstash" count is what QStash still has to deliver.
    pending_by_provider: dict[str, int]
    # Actions no longer PENDING that were published to Inngest for a time still ahead:
    # their runs sleep on unless the cancel reached Inngest (bridge.apps.AuditResult).
    settled_inngest_events: tuple[str, ...] = ()
    settled_inngest_total: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "byStatus": self.by_status,
            "pending": {
                "count": self.pending,
                "oldestScheduledFor": _iso(self.oldest_pending),
            },
            "dueUnexecuted": self.due_unexecuted,
            "stuckExecuting": self.stuck_executing,
            "pendingByProvider": self.pending_by_provider,
        }

    def rows(self) -> list[tuple[str, str]]:
        oldest = self.oldest_pending.isoformat() if self.oldest_pending else "-"
        rows = [(status, str(count)) for status, count in self.by_status.items()]
        rows += [
            ("PENDING: oldest scheduledFor", oldest),
            ("PENDING: due, not executed", str(self.due_unexecuted)),
            ("EXECUTING: lease expired (stuck)", str(self.stuck_executing)),
        ]
        rows += [
            (f"PENDING: published to {provider}", str(count))
            for provider, count in self.pending_by_provider.items()
        ]
        return rows

    def summary(self) -> str:
        by_provider = ", ".join(
            f"{name} {count}" for name, count in self.pending_by_provider.items()
        )
        oldest = self.oldest_pending.isoformat() if self.oldest_pending else "-"
        return (
            f"pending scheduled actions: {self.pending} ({self.due_unexecuted} due, "
            f"{self.stuck_executing} stuck executing; oldest {oldest}"
            + (f"; published to {by_provider}" if by_provider else "")
            + ")"
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def audit_scheduled_actions(
    connection: Connection, now: datetime | None = None
) -> ScheduledActionsAudit:
    """Counts straight from the indexed columns: a handful of aggregate queries, no rows."""
    now = now or datetime.now(UTC)
    table = ScheduledAction
    by_status: dict[str, int] = {status.value: 0 for status in ActionStatus}
    for status, count in connection.execute(
        select(table.status, func.count()).group_by(table.status)
    ):
        by_status[ActionStatus(status).value] = int(count)

    pending_filter = table.status == ActionStatus.PENDING
    oldest, due = connection.execute(
        select(
            func.min(table.scheduled_for),
            func.coalesce(func.sum(case((table.scheduled_for <= now, 1), else_=0)), 0),
        ).where(pending_filter)
    ).one()

    stuck_count = connection.scalar(select(func.count()).where(*stuck(now)))
    by_provider: dict[str, int] = {}
    for provider, count in connection.execute(
        select(table.scheduled_provider, func.count())
        .where(pending_filter)
        .group_by(table.scheduled_provider)
    ):
        by_provider[provider or "unpublished"] = int(count)

    settled = (
        table.status != ActionStatus.PENDING,
        table.scheduled_provider == Provider.INNGEST.value,
        table.scheduled_for > now,
        table.scheduled_id.is_not(None),
    )
    settled_total = connection.scalar(select(func.count()).where(*settled))
    settled_ids = connection.scalars(
        select(table.scheduled_id)
        .where(*settled)
        .order_by(table.scheduled_for)
        .limit(SETTLED_CHECKED)
    ).all()
    return ScheduledActionsAudit(
        settled_inngest_events=tuple(str(i) for i in settled_ids),
        settled_inngest_total=int(settled_total or 0),
        by_status=by_status,
        pending=by_status[ActionStatus.PENDING.value],
        oldest_pending=oldest,
        due_unexecuted=int(due),
        stuck_executing=int(stuck_count or 0),
        pending_by_provider=dict(sorted(by_provider.items())),
    )


class ScheduledActionsAuditor:
    """The app's audit for the shim (bridge.apps.AppAudit)."""

    title = "scheduled actions"
    json_key = "scheduledActions"

    def collect(self, connection: Connection, now: datetime | None = None) -> ScheduledActionsAudit:
        return audit_scheduled_actions(connection, now)

    def activity(self, connection: Connection, now: datetime, hours: int) -> Activity:
        return scheduled_action_activity(connection, now, hours)


audit = ScheduledActionsAuditor()
