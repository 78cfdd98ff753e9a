"""What QStash still holds for this app, as the `/status` page asks it: messages by the
state of their latest log entry, and dead letters, each mapped to the app's routes.

Bounded for a page that refreshes itself: a short timeout per request, a few pages of
logs and of the DLQ at most (past them the counts are lower bounds and say so), and the
first failure ends the reading with its reason. The caller caches the answer.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bridge.ops.audit import qstash_client
from bridge.ops.measure import describe, ms_since
from bridge.qstash import drain
from bridge.registry import Registry
from config import Settings

DEFAULT_QSTASH_URL = "https://qstash.upstash.io"
LOGS_SINCE = timedelta(days=7)  # as `jobbridge qstash messages` reads them by default
LOG_PAGES = 2  # of drain.LOG_PAGE (1000) entries each
DLQ_READ = 3 * drain.DLQ_PAGE  # dead letters read at most (each one's body comes along)
REQUEST_TIMEOUT = 3.0  # seconds per request to QStash's API


@dataclass(frozen=True)
class QStashHoldings:
    """`error` says why QStash was not (fully) asked; the counts are None then."""

    configured: bool  # QSTASH_TOKEN is set, so QStash can be asked at all
    error: str | None = None
    since: datetime | None = None
    # This app's messages (its job and cron routes under WEBHOOK_URL), by latest state.
    by_state: Counter[str] = field(default_factory=Counter)
    other_messages: int = 0  # messages of the account to URLs that are not this app's
    logs_truncated: bool = False  # older log entries were left unread
    dlq_for_app: int | None = None
    dlq_total: int | None = None
    dlq_is_lower_bound: bool = False  # more dead letters than were read
    latency_ms: float | None = None

    @property
    def answered(self) -> bool:
        return self.configured and self.error is None

    @property
    def pending_for_app(self) -> int | None:
        """This app's messages QStash will still deliver or retry (not delivered, failed
        or canceled: drain.FINAL_STATES); None when QStash was not asked."""
        if not self.answered:
            return None
        return sum(n for state, n in self.by_state.items() if state not in drain.FINAL_STATES)

    def states(self) -> list[str]:
        """Columns: the usual states always, any other one seen after them."""
        known = [*drain.PENDING_STATES, *drain.FINAL_STATES]
        return known + sorted(set(self.by_state) - set(known))

    def as_json(self) -> dict[str, Any]:
        return {
            "configured": self.configured,
            "error": self.error,
            "since": self.since.isoformat() if self.since else None,
            "messagesByState": dict(sorted(self.by_state.items())),
            "pendingForApp": self.pending_for_app,
            "otherMessages": self.other_messages,
            "logsTruncated": self.logs_truncated,
            "dlqForApp": self.dlq_for_app,
            "dlqTotal": self.dlq_total,
            "dlqIsLowerBound": self.dlq_is_lower_bound,
        }


def read_qstash_holdings(
    settings: Settings, registry: Registry, now: datetime, timeout: float = REQUEST_TIMEOUT
) -> QStashHoldings:
    if settings.qstash_token is None:
        return QStashHoldings(configured=False, error="QSTASH_TOKEN is not set")
    where = settings.qstash_url or DEFAULT_QSTASH_URL
    routes = drain.Routes(registry, settings.webhook_url)
    since = now - LOGS_SINCE
    started = time.perf_counter()
    try:
        client = qstash_client(settings, timeout)
        counts = drain.count_messages(client, routes, since=since, max_pages=LOG_PAGES)
        letters = drain.list_dead_letters(client, routes, limit=DLQ_READ)
    except Exception as error:
        why = drain.describe_failure(error, where) or describe(error)
        return QStashHoldings(configured=True, error=why, since=since)
    ours: Counter[str] = Counter()
    other = 0
    for label, by_state in counts.by_destination.items():
        if counts.destinations[label].route is not None:
            ours.update(by_state)
        else:
            other += sum(by_state.values())
    return QStashHoldings(
        configured=True,
        since=since,
        by_state=ours,
        other_messages=other,
        logs_truncated=counts.truncated,
        dlq_for_app=sum(1 for letter in letters.letters if letter.destination.route is not None),
        dlq_total=len(letters.letters),
        dlq_is_lower_bound=letters.cursor is not None,
        latency_ms=ms_since(started),
    )
