"""`jobbridge audit`: what QStash holds for this app (queues, DLQ); the app counts its own."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from qstash import QStash

from bridge.ops.measure import describe, ms_since
from config import Settings


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
