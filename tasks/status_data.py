"""What the `/status` page shows of scheduled actions (bridge.apps.AppAudit.activity):
executions per minute by the provider that ran them, the last hour's failures with their
errors, and the actions stuck EXECUTING.

A few aggregate queries over indexed columns (`status`, `executed_at`), and at most
ROWS_SHOWN rows per table, so the page costs the same with a million actions.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, or_, select

from bridge.activity import Activity, MinuteSeries, RowTable
from tasks.models import ActionStatus, ScheduledAction

ROWS_SHOWN = 20  # per table; the page says how many there are in all
ERROR_SHOWN = 500  # characters of an error shown (the row keeps it whole)
FAILURES_SINCE = timedelta(hours=1)
# Executions whose provider was not recorded (run before the column existed).
UNRECORDED = "unrecorded"
FINISHED = (ActionStatus.COMPLETED, ActionStatus.FAILED)


def scheduled_action_activity(connection: Connection, now: datetime, hours: int) -> Activity:
    return Activity(
        series=executions_per_minute(connection, now, hours),
        tables=(recent_failures(connection, now), stuck_executing(connection, now)),
    )


def _whole_minute(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def _minute_of(connection: Connection, column: Any) -> ColumnElement[Any]:
    """The minute of a timestamp column, grouped by in SQL."""
    if connection.dialect.name == "postgresql":
        return func.date_trunc("minute", column)
    # SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC.
    return func.substr(column, 1, 16)


def _as_minute(value: Any) -> datetime:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return _whole_minute(aware)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def executions_per_minute(connection: Connection, now: datetime, hours: int) -> MinuteSeries:
    """COMPLETED and FAILED actions per minute of `executed_at`, by `executed_provider`,
    over the `hours` up to and including the current minute."""
    minutes = hours * 60
    start = _whole_minute(now) - timedelta(minutes=minutes - 1)
    table = ScheduledAction
    minute = _minute_of(connection, table.executed_at).label("minute")
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * minutes)
    for at, provider, count in connection.execute(
        select(minute, table.executed_provider, func.count())
        .where(table.status.in_(FINISHED), table.executed_at >= start)
        .group_by(minute, table.executed_provider)
    ):
        index = int((_as_minute(at) - start).total_seconds() // 60)
        if 0 <= index < minutes:  # a clock ahead of ours: not drawn past the end
            counts[provider or UNRECORDED][index] += int(count)
    return MinuteSeries(
        title="scheduled actions executed per minute (completed or failed), by provider",
        start=start,
        minutes=minutes,
        counts={key: tuple(values) for key, values in sorted(counts.items())},
    )


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}" if value is not None else "-"


def recent_failures(connection: Connection, now: datetime) -> RowTable:
    table = ScheduledAction
    failed = (table.status == ActionStatus.FAILED, table.executed_at >= now - FAILURES_SINCE)
    total = connection.scalar(select(func.count()).where(*failed)) or 0
    rows = connection.execute(
        select(
            table.executed_at,
            table.id,
            table.action_type,
            table.executed_provider,
            table.execution_attempts,
            table.error,
        )
        .where(*failed)
        .order_by(table.executed_at.desc())
        .limit(ROWS_SHOWN)
    )
    return RowTable(
        title="scheduled actions failed in the last hour",
        columns=("failed at (UTC)", "action", "type", "provider", "executions", "error"),
        rows=tuple(
            (
                _when(at),
                action_id,
                action_type.value,
                provider or UNRECORDED,
                str(attempts),
                (error or "-")[:ERROR_SHOWN],
            )
            for at, action_id, action_type, provider, attempts, error in rows
        ),
        total=int(total),
        empty="no failures in the last hour",
    )


def stuck(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """EXECUTING rows whose lease expired: nothing is running them. A NULL lease on an
    EXECUTING row should not exist; if one does, nothing will ever release it (the sweep
    only reclaims expired leases), so it is stuck too."""
    table = ScheduledAction
    return (
        table.status == ActionStatus.EXECUTING,
        or_(table.lease_expires_at < now, table.lease_expires_at.is_(None)),
    )


def stuck_executing(connection: Connection, now: datetime) -> RowTable:
    """The stuck rows, the longest stuck first: a NULL lease (stuck since ever) before the
    oldest expired one, on PostgreSQL and SQLite alike (they put NULLs at opposite ends
    unless told). The sweep puts expired ones back to PENDING within a minute; one
    listed for longer means the sweep is not running."""
    table = ScheduledAction
    total = connection.scalar(select(func.count()).where(*stuck(now))) or 0
    rows = connection.execute(
        select(
            table.id,
            table.action_type,
            table.claimed_by,
            table.lease_expires_at,
            table.scheduled_for,
            table.execution_attempts,
        )
        .where(*stuck(now))
        .order_by(table.lease_expires_at.asc().nulls_first(), table.id)
        .limit(ROWS_SHOWN)
    )
    return RowTable(
        title="scheduled actions stuck EXECUTING (lease expired)",
        columns=(
            "action",
            "type",
            "claimed by",
            "lease expired (UTC)",
            "scheduled for (UTC)",
            "executions",
        ),
        rows=tuple(
            (action_id, kind.value, claimed or "-", _when(lease), _when(due), str(attempts))
            for action_id, kind, claimed, lease, due, attempts in rows
        ),
        total=int(total),
        empty="none stuck",
    )
