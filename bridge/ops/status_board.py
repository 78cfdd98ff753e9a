"""Everything the `/status` page shows, collected at once: the provider chain and why,
the services behind it, what each provider still holds, the app's recent work (its
`activity`), the last sweep, and the verdict on removing QSTASH_*.

Each part runs in a thread of its own with its own timeouts, and the whole waits at
most DEADLINE seconds: a part that has not answered by then (a database or QStash that
hangs) is shown as unknown, with why, and the page still renders.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select

from bridge.activity import Activity
from bridge.apps import App, AppAudit, AuditResult
from bridge.metrics import last_sweep_success, multiprocess_dir
from bridge.ops.measure import describe
from bridge.ops.probes import (
    Check,
    check_broker,
    check_database,
    check_inngest,
    probe_engine,
    shown_url,
)
from bridge.ops.qstash_holdings import (
    DEFAULT_QSTASH_URL,
    LogCensus,
    QStashHoldings,
    read_qstash_holdings,
)
from bridge.ops.qstash_verdict import Verdict, judge
from bridge.store.tables import DeferredJob
from config import ProviderChain, Settings, resolve_chain

HOURS = 3  # of activity shown
DEADLINE = 8.0  # seconds the page waits for all parts together
PROBE_TIMEOUT = 2.0  # seconds per service probe and database connection
T = TypeVar("T")


@dataclass(frozen=True)
class AppPart:
    """What the database says: the app's counts and activity, and deferred Celery jobs."""

    check: Check
    counted: AuditResult | None = None
    activity: Activity | None = None
    deferred_jobs: int | None = None
    error: str | None = None  # why the app's numbers are missing


@dataclass(frozen=True)
class Board:
    checked_at: datetime
    hours: int
    chain: ProviderChain
    broker: Check  # Celery's
    inngest: Check
    qstash_check: Check
    audit_title: str | None  # what the app counts; None: it counts nothing
    app: AppPart
    qstash: QStashHoldings
    last_sweep: datetime | None
    # PROMETHEUS_MULTIPROC_DIR is set: the sweeps of every process sharing it are seen.
    metrics_shared: bool
    verdict: Verdict

    @property
    def checks(self) -> tuple[Check, ...]:
        return (self.app.check, self.broker, self.inngest, self.qstash_check)

    def service_of(self, provider: str) -> Check | None:
        """The probe of the service a provider publishes to (HTTP has none)."""
        found = {"celery": self.broker, "inngest": self.inngest, "qstash": self.qstash_check}
        return found.get(provider)

    def as_json(self) -> dict[str, Any]:
        counted, activity = self.app.counted, self.app.activity
        return {
            "checkedAt": self.checked_at.isoformat(),
            "hours": self.hours,
            "verdict": self.verdict.as_json(),
            "chain": {
                "providers": [provider.value for provider in self.chain.providers],
                "failover": self.chain.failover,
                "links": [
                    {"provider": link.provider.value, "used": link.used, "reason": link.reason}
                    for link in self.chain.links
                ],
            },
            "services": [
                {"name": check.name, "state": check.state, "detail": check.detail}
                for check in self.checks
            ],
            "app": {
                "title": self.audit_title,
                "error": self.app.error,
                "counts": counted.as_json() if counted is not None else None,
                "pendingByProvider": counted.pending_by_provider if counted is not None else None,
                "activity": activity.as_json() if activity is not None else None,
            },
            "deferredJobs": self.app.deferred_jobs,
            "qstash": self.qstash.as_json(),
            "lastSweep": self.last_sweep.isoformat() if self.last_sweep else None,
            "metricsShared": self.metrics_shared,
        }


def read_app(settings: Settings, audit: AppAudit | None, now: datetime, hours: int) -> AppPart:
    check, counted = check_database(settings, PROBE_TIMEOUT, audit)
    if not check.ok:
        return AppPart(check, error=check.detail)
    try:
        with probe_engine(settings, PROBE_TIMEOUT) as engine, engine.connect() as connection:
            activity = audit.activity(connection, now, hours) if audit is not None else None
            deferred = connection.scalar(select(func.count()).select_from(DeferredJob))
    except Exception as error:
        return AppPart(check, counted, error=describe(error))
    return AppPart(check, counted, activity, int(deferred or 0))


def _qstash_check(found: QStashHoldings, settings: Settings) -> Check:
    where = shown_url(settings.qstash_url or DEFAULT_QSTASH_URL)
    if not found.configured:
        return Check("qstash", None, False, "no QSTASH_TOKEN")
    if found.error is not None:
        return Check("qstash", False, True, found.error)
    return Check("qstash", True, True, f"{where}: token accepted", found.latency_ms)


def _done(future: Future[T], fallback: Callable[[str], T]) -> T:
    """The part's answer; else `fallback` told why there is none (late, or it raised)."""
    if not future.done():
        return fallback(f"no answer within {DEADLINE:g} s")
    try:
        return future.result()
    except Exception as error:
        return fallback(describe(error))


def collect_board(
    settings: Settings,
    app: App,
    *,
    hours: int = HOURS,
    now: datetime | None = None,
    census: LogCensus | None = None,
) -> Board:
    """`census` keeps QStash's logs read so far between collections (a page's cache
    holds one); without it they are read from scratch, within one collection's budget."""
    now = now or datetime.now(UTC)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="status-page")
    try:
        app_part = pool.submit(read_app, settings, app.audit, now, hours)
        broker = pool.submit(check_broker, settings, PROBE_TIMEOUT)
        inngest = pool.submit(check_inngest, settings, PROBE_TIMEOUT)
        qstash = pool.submit(read_qstash_holdings, settings, app.registry, now, census)
        parts: list[Future[Any]] = [app_part, broker, inngest, qstash]
        wait(parts, timeout=DEADLINE)
    finally:
        # A part still running goes on in its thread, bounded by its own timeouts; its
        # answer is dropped.
        pool.shutdown(wait=False, cancel_futures=True)

    found_app = _done(app_part, lambda why: AppPart(Check("database", False, True, why), error=why))
    found_qstash = _done(
        qstash, lambda why: QStashHoldings(configured=settings.qstash_token is not None, error=why)
    )
    found_inngest = _done(inngest, lambda why: Check("inngest", False, True, why))
    chain = resolve_chain(settings)
    counted = found_app.counted
    verdict = judge(
        settings,
        chain,
        found_qstash,
        inngest=found_inngest,
        pending_title=app.audit.title if app.audit is not None else None,
        pending_by_provider=counted.pending_by_provider if counted is not None else None,
        app_error=found_app.error,
    )
    swept = last_sweep_success()
    return Board(
        checked_at=now,
        hours=hours,
        chain=chain,
        broker=_done(broker, lambda why: Check("broker", False, True, why)),
        inngest=found_inngest,
        qstash_check=_qstash_check(found_qstash, settings),
        audit_title=app.audit.title if app.audit is not None else None,
        app=found_app,
        qstash=found_qstash,
        last_sweep=datetime.fromtimestamp(swept, UTC) if swept else None,
        metrics_shared=multiprocess_dir() is not None,
        verdict=verdict,
    )
