"""`jobbridge audit`: what the database and QStash hold (scheduled actions, queues, DLQ)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Connection, case, func, or_, select

from bridge.ops.measure import describe, ms_since
from config import Settings


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def audit_scheduled_actions(
    connection: Connection, now: datetime | None = None
) -> ScheduledActionsAudit:
    """Counts straight from the indexed columns: a handful of aggregate queries, no rows."""
    from tasks.models import ActionStatus, ScheduledAction

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

    # A NULL lease on an EXECUTING row should not exist; if one does, nothing will ever
    # release it (the sweep only reclaims expired leases), so it is stuck too.
    stuck = connection.scalar(
        select(func.count()).where(
            table.status == ActionStatus.EXECUTING,
            or_(table.lease_expires_at < now, table.lease_expires_at.is_(None)),
        )
    )
    by_provider: dict[str, int] = {}
    for provider, count in connection.execute(
        select(table.scheduled_provider, func.count())
        .where(pending_filter)
        .group_by(table.scheduled_provider)
    ):
        by_provider[provider or "unpublished"] = int(count)

    return ScheduledActionsAudit(
        by_status=by_status,
        pending=by_status[ActionStatus.PENDING.value],
        oldest_pending=oldest,
        due_unexecuted=int(due),
        stuck_executing=int(stuck or 0),
        pending_by_provider=dict(sorted(by_provider.items())),
    )


@dataclass(frozen=True)
class QueueInfo:
    name: str
    lag: int
    paused: bool
    parallelism: int


@dataclass(frozen=True)
class QStashAudit:
    queues: list[QueueInfo] = field(default_factory=list)
    dlq_size: int | None = None
    # The DLQ is counted page by page up to a cap; past it the size is a lower bound.
    dlq_size_is_lower_bound: bool = False
    latency_ms: float | None = None
    error: str | None = None

    @property
    def total_lag(self) -> int:
        return sum(queue.lag for queue in self.queues)

    def as_json(self) -> dict[str, Any]:
        return {
            "queues": [
                {"name": q.name, "lag": q.lag, "paused": q.paused, "parallelism": q.parallelism}
                for q in self.queues
            ],
            "totalLag": self.total_lag,
            "dlqSize": self.dlq_size,
            "dlqSizeIsLowerBound": self.dlq_size_is_lower_bound,
            "error": self.error,
        }


DLQ_PAGE = 100  # the API's maximum page size
DLQ_MAX_PAGES = 100


def qstash_client(settings: Settings, timeout: float) -> Any:
    from qstash import QStash

    assert settings.qstash_token is not None
    # retry=False: the SDK would otherwise retry a dead host five times with backoff.
    client = QStash(
        settings.qstash_token.get_secret_value(), retry=False, base_url=settings.qstash_url
    )
    # The SDK's own timeout is 600 s and not configurable; an operator command must not
    # wait that long for an answer.
    client.http._client.timeout = httpx.Timeout(timeout)
    return client


def qstash_queues(settings: Settings, timeout: float = 5.0) -> QStashAudit:
    """The queues with their lag: one authenticated GET, also the reachability probe."""
    started = time.perf_counter()
    try:
        queues = qstash_client(settings, timeout).queue.list()
    except Exception as error:
        return QStashAudit(error=describe(error))
    return QStashAudit(
        queues=[QueueInfo(q.name, int(q.lag), bool(q.paused), int(q.parallelism)) for q in queues],
        latency_ms=ms_since(started),
    )


def audit_qstash(settings: Settings, timeout: float = 5.0) -> QStashAudit:
    """Queues (name, lag, paused) and the DLQ's size. The DLQ API has no count: it is paged
    through (ids only matter), up to DLQ_MAX_PAGES pages."""
    found = qstash_queues(settings, timeout)
    if found.error is not None:
        return found
    client = qstash_client(settings, timeout)
    size, cursor, pages = 0, None, 0
    try:
        while True:
            page = client.dlq.list(cursor=cursor, count=DLQ_PAGE)
            size += len(page.messages)
            pages += 1
            cursor = page.cursor
            if not cursor or pages >= DLQ_MAX_PAGES:
                break
    except Exception as error:
        return QStashAudit(queues=found.queues, latency_ms=found.latency_ms, error=describe(error))
    return QStashAudit(
        queues=found.queues,
        dlq_size=size,
        dlq_size_is_lower_bound=bool(cursor),
        latency_ms=found.latency_ms,
    )
