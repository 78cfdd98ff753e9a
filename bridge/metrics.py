"""Prometheus metrics: the instruments, and the multiprocess directory they write to.

With PROMETHEUS_MULTIPROC_DIR set (prometheus-client's own variable, read from the
process environment only: not a Settings field, since a value in .env would not reach
the library), every process writes its samples to files there, so uvicorn's workers and
Celery's prefork children add up in one `/metrics` (bridge.metrics_web). Unset, each
process keeps its own in memory (fine for one process, as in `jobbridge dev`'s web).

The directory is shared by the process groups of one host (web, worker), so no group
may wipe it whole when it starts: importing this module (each uvicorn worker, the Celery
worker's main process before it forks its pool) creates it and removes the files of
processes that are no longer running (the last run's), keeping the live ones'. At
import, because no sample may be written before: prometheus-client opens a process's
files as its first value is made, and an unlabelled instrument makes it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from config.exiting import exit_plainly, unusable_folder

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir() -> Path | None:
    """Create PROMETHEUS_MULTIPROC_DIR and remove the files of processes that are gone.

    A file named with this process's own pid is a previous run's (the pid was reused,
    common in containers: this process has written nothing yet) and goes too. A live
    process's files stay: another group on the host (the worker, the web's other uvicorn
    workers) owns them and keeps writing to them."""
    folder = multiprocess_dir()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process cleans at a time
        for path in folder.glob("*.db"):
            pid = _pid_of(path)
            if pid is None or pid == os.getpid() or not _alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    return folder


def _pid_of(path: Path) -> int | None:
    """`counter_123.db`, `gauge_max_123.db`: the pid is the name's last part."""
    last = path.stem.rsplit("_", 1)[-1]
    return int(last) if last.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: running
    return True


try:
    prepare_multiprocess_dir()  # before the first instrument below (see the docstring)
except OSError as _error:
    exit_plainly(unusable_folder(MULTIPROC_ENV, _error, "the processes' metrics"))

DELIVERIES = Counter(
    "jobbridge_deliveries_total",
    "Job deliveries run, by job, provider and outcome (done, skipped, retry, failed).",
    ["job", "provider", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "jobbridge_delivery_duration_seconds",
    "Time a delivery took in the execution core (validation and the job's body).",
    ["job", "provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PUBLISHES = Counter(
    "jobbridge_publishes_total",
    "Jobs a provider accepted for delivery, by job and provider.",
    ["job", "provider"],
)
PUBLISH_FAILURES = Counter(
    "jobbridge_publish_failures_total",
    "Jobs a provider refused or could not be reached for (PublishError), by job and provider.",
    ["job", "provider"],
)
FAILOVERS = Counter(
    "jobbridge_failovers_total",
    "Publishes moved on to the next provider of the chain after one failed.",
    ["from_provider", "to_provider"],
)
LEDGER_DUPLICATES = Counter(
    "jobbridge_ledger_duplicates_total",
    "Deliveries answered from the ledger without running: the job had already settled.",
    ["provider"],
)
REPLAYS_REFUSED = Counter(
    "jobbridge_replays_refused_total",
    "QStash deliveries refused because their signed token was used before.",
)
SWEEP_RUNS = Counter(
    "jobbridge_sweep_runs_total",
    "Scheduled-action sweeps that ran to the end and published every due action.",
)
SWEEP_LAST_SUCCESS_NAME = "jobbridge_sweep_last_success_timestamp_seconds"
SWEEP_LAST_SUCCESS = Gauge(
    SWEEP_LAST_SUCCESS_NAME,
    "Unix time the last scheduled-action sweep ran to the end and published every due action.",
    multiprocess_mode="max",
)


def sweep_succeeded(now: float | None = None) -> None:
    """What the scheduled-action sweep calls when it has run to the end and published
    every due action."""
    SWEEP_RUNS.inc()
    SWEEP_LAST_SUCCESS.set(time.time() if now is None else now)


def last_sweep_success() -> float | None:
    """Unix time of the last sweep run to the end that the processes writing here recorded
    (every process of the host sharing PROMETHEUS_MULTIPROC_DIR; without it, this process
    alone); None when they recorded none."""
    values = [
        sample.value
        for family in process_registry().collect()
        if family.name == SWEEP_LAST_SUCCESS_NAME
        for sample in family.samples
        if sample.name == SWEEP_LAST_SUCCESS_NAME
    ]
    return max(values, default=0.0) or None


def process_exited(pid: int | None = None) -> None:
    """prometheus-client's bookkeeping for a process that ends: its live gauges go."""
    folder = multiprocess_dir()
    if folder is not None:
        pid = os.getpid() if pid is None else pid
        mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


class _ThisProcess(Collector):
    """Without a multiprocess directory: this process's own instruments."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def process_registry() -> CollectorRegistry:
    """What every process writing metrics has counted: the multiprocess directory's
    files added up, or this process's own instruments when there is none."""
    registry = CollectorRegistry(auto_describe=True)
    folder = multiprocess_dir()
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    return registry
