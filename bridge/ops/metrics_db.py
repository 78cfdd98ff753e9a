"""Gauges read from the database at scrape time: the app's audit and the deferred jobs.

Registered on the web app's `/metrics` only, never as a multiprocess instrument: every
process would write the same count and the aggregation would add them up. A scrape
reuses the last counts for `ttl` seconds, so Prometheus (or two of them) scraping
often costs at most one set of aggregate queries every 15 seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bridge.apps import AppAudit
from bridge.ops.probes import check_database, probe_engine
from bridge.store.tables import DeferredJob
from config import Provider, Settings

log = logging.getLogger("jobbridge.metrics")
CACHE_SECONDS = 15.0
QUERY_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class DatabaseCounts:
    ok: bool
    by_status: dict[str, int] = field(default_factory=dict)
    pending_by_provider: dict[str, int] = field(default_factory=dict)
    stuck_executing: int | None = None
    due_unexecuted: int | None = None
    deferred_jobs: int | None = None


def read_counts(settings: Settings, audit: AppAudit | None) -> DatabaseCounts:
    """The counts now; ok=False (and no counts) when the database cannot answer."""
    check, counted = check_database(settings, QUERY_TIMEOUT_SECONDS, audit)
    if not check.ok:
        log.warning("metrics: the database did not answer: %s", check.detail)
        return DatabaseCounts(ok=False)
    try:
        with probe_engine(settings, QUERY_TIMEOUT_SECONDS) as engine, engine.connect() as conn:
            deferred = conn.scalar(select(func.count()).select_from(DeferredJob))
    except Exception as error:
        log.warning("metrics: counting deferred jobs failed: %s", error)
        return DatabaseCounts(ok=False)
    # The audit's JSON (tasks/audit.py for the inbox app): the keys each gauge reads.
    found = counted.as_json() if counted is not None else {}
    return DatabaseCounts(
        ok=True,
        by_status=_counts(found.get("byStatus")),
        pending_by_provider=_counts(found.get("pendingByProvider")),
        stuck_executing=_count(found.get("stuckExecuting")),
        due_unexecuted=_count(found.get("dueUnexecuted")),
        deferred_jobs=int(deferred or 0),
    )


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(key): int(count) for key, count in value.items() if isinstance(count, int)}


def _count(value: object) -> int | None:
    return value if isinstance(value, int) else None


class DatabaseCollector(Collector):
    """Scrape-time gauges from the database, cached for `ttl` seconds."""

    def __init__(
        self,
        settings: Settings,
        audit: AppAudit | None,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings, self._audit, self._ttl, self._clock = settings, audit, ttl, clock
        self._lock = threading.Lock()
        self._cached: tuple[float, DatabaseCounts] | None = None

    def counts(self) -> DatabaseCounts:
        with self._lock:  # concurrent scrapes wait for one set of queries
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, read_counts(self._settings, self._audit))
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        counts = self.counts()
        yield GaugeMetricFamily(
            "jobbridge_database_up",
            "1 if the last scrape-time database read succeeded (the gauges below need it).",
            value=1 if counts.ok else 0,
        )
        if not counts.ok:
            return
        statuses = GaugeMetricFamily(
            "jobbridge_scheduled_actions", "Scheduled actions by status.", labels=["status"]
        )
        for status, count in counts.by_status.items():
            statuses.add_metric([status], count)
        yield statuses
        pending = GaugeMetricFamily(
            "jobbridge_scheduled_actions_pending",
            "PENDING scheduled actions by the provider they were last published to "
            "(unpublished: not yet published).",
            labels=["provider"],
        )
        # Every provider has a series, 0 included: `...{provider="qstash"} == 0` is how
        # the migration's runbook knows QStash has nothing left to deliver.
        by_provider = {provider.value: 0 for provider in Provider}
        for provider, count in {**by_provider, **counts.pending_by_provider}.items():
            pending.add_metric([provider], count)
        yield pending
        for name, help_text, value in (
            (
                "jobbridge_scheduled_actions_stuck_executing",
                "EXECUTING scheduled actions whose lease expired (nothing is running them).",
                counts.stuck_executing,
            ),
            (
                "jobbridge_scheduled_actions_due_unexecuted",
                "PENDING scheduled actions whose time has come.",
                counts.due_unexecuted,
            ),
            (
                "jobbridge_deferred_jobs",
                "Celery jobs due beyond the ETA horizon, waiting in the database.",
                counts.deferred_jobs,
            ),
        ):
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)
