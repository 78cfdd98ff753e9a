"""A Celery app for the per-key limit tests: `celery -A tests.support.limited_worker worker`.

An app of its own on the shim, with test-only jobs that declare limits: the inbox
app's registry, which the rest of the suite checks, never sees them.

Every run records when it started and ended in LIMITS_EVENTS_DIR, one small file each
named `<label>.<attempt>.start|end`, so the test can measure how many overlapped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

from bridge.celery import limits
from bridge.celery import tasks as celery_tasks
from bridge.celery.app import celery_app
from bridge.outcome import Delivery, PermanentError, Result, RetryLater, done
from bridge.payload import Payload
from bridge.registry import Registry, Throttle

registry = Registry(event_prefix="inbox-zero/")
EVENTS = Path(os.environ["LIMITS_EVENTS_DIR"])

# Leases of seconds, not minutes, so the crash test waits briefly for a dead holder's
# slot: the pool kills a run 2 s after its timeout, and its lease ends 1 s after that.
celery_tasks.HARD_LIMIT_GRACE_SECONDS = 2
limits.HOLDER_MARGIN_SECONDS = 1.0


class LimitedRun(Payload):
    email_account_id: str
    label: str
    hold_seconds: float = 0.5
    outcome: Literal["done", "fail", "retry"] = "done"
    crash_once: bool = False  # the first run announces its pid in <label>.pid and hangs


def _record(label: str, what: str, delivery: Delivery) -> None:
    final = EVENTS / f"{label}.{delivery.attempt}.{what}"
    partial = EVENTS / f".{final.name}.{os.getpid()}.tmp"
    partial.write_text(json.dumps({"at": time.time(), "pid": os.getpid()}))
    os.replace(partial, final)  # the test never reads half a file


def _first_run(label: str) -> bool:
    try:
        with (EVENTS / f"{label}.pid").open("x") as handle:  # only the first caller creates it
            handle.write(str(os.getpid()))
    except FileExistsError:
        return False
    return True


def run_limited(payload: LimitedRun, delivery: Delivery) -> Result:
    if payload.crash_once and _first_run(payload.label):
        time.sleep(120)  # SIGKILLed long before this ends, still holding its slot
    _record(payload.label, "start", delivery)
    time.sleep(payload.hold_seconds)  # the work, done while holding the slot
    _record(payload.label, "end", delivery)
    if payload.outcome == "fail":
        raise PermanentError("asked to fail")
    if payload.outcome == "retry":
        raise RetryLater("asked to retry", retry_after=0.1)
    return done(payload.label)


limited = registry.job(
    event="inbox-zero/test.limited",
    route="/api/test/limited",
    payload=LimitedRun,
    retries=1,
    timeout_seconds=10,
    concurrency=3,
)(run_limited)

# One slot per account, and a soft time limit (3 s) the crash test's SIGKILL comes first.
single = registry.job(
    event="inbox-zero/test.single",
    route="/api/test/single",
    payload=LimitedRun,
    retries=0,
    timeout_seconds=3,
    concurrency=1,
)(run_limited)

throttled = registry.job(
    event="inbox-zero/test.throttled",
    route="/api/test/throttled",
    payload=LimitedRun,
    retries=0,
    timeout_seconds=10,
    throttle=Throttle(limit=2, period_seconds=1),
)(run_limited)

# Made after the declarations and the shortened grace above, which its tasks take.
app = celery_app(registry)
