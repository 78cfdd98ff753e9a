"""`jobbridge status`: every probe at once, and the provider chain."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from bridge.apps import AppAudit, AuditResult
from bridge.celery.config import make_embedded_broker_folders
from bridge.ops.audit import QStashAudit
from bridge.ops.probes import (
    Check,
    check_broker,
    check_database,
    check_inngest,
    check_qstash,
    check_redis_store,
    check_workers,
)
from config import ProviderChain, Settings, resolve_chain

T = TypeVar("T")


@dataclass(frozen=True)
class StatusReport:
    chain: ProviderChain
    checks: list[Check]
    audit: AppAudit | None  # what the app counts, if it counts anything
    counted: AuditResult | None  # its counts; None when the database could not say
    qstash: QStashAudit | None
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return not any(check.failing for check in self.checks)

    @property
    def down(self) -> list[str]:
        return [check.name for check in self.checks if check.failing]


def collect_status(
    settings: Settings,
    audit: AppAudit | None = None,
    timeout: float = 2.0,
    worker_timeout: float = 1.0,
) -> StatusReport:
    """Probe every service at once (each bounded by `timeout`), then ask the workers when
    the broker is up: a broadcast to a dead broker would wait for kombu's retries."""
    # Made as a worker or a publish would make them, so the broker probe sees the same
    # state whichever process started first; but never a DATA_DIR that nothing made (a
    # mistyped one is reported, not created).
    if settings.data_dir.is_dir():
        make_embedded_broker_folders(settings)
    with ThreadPoolExecutor(max_workers=5) as pool:
        database = pool.submit(check_database, settings, timeout, audit)
        broker = pool.submit(check_broker, settings, timeout)
        store = pool.submit(check_redis_store, settings, timeout)
        inngest = pool.submit(check_inngest, settings, timeout)
        qstash = pool.submit(check_qstash, settings, timeout)
        database_check, counted = database.result()
        broker_check = broker.result()
        qstash_check, queues = qstash.result()
        # Redis beside a broker that is not it (RabbitMQ): the ledger and limits use it.
        redis_check = [found] if (found := store.result()) is not None else []
        checks = [database_check, broker_check, *redis_check, inngest.result(), qstash_check]
    if broker_check.ok:
        checks.append(check_workers(settings, worker_timeout))
    else:
        checks.append(
            Check("celery workers", False, False, f"not asked: {broker_check.name} is down")
        )
    return StatusReport(resolve_chain(settings), checks, audit, counted, queues, datetime.now(UTC))


def every(seconds: float, produce: Callable[[], T]) -> Iterator[T]:
    """`produce()` now and then every `seconds` (measured from each start), forever."""
    while True:
        started = time.monotonic()
        yield produce()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
