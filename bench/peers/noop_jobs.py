"""The Celery rows' two no-ops, for `celery -A noop_jobs worker` (bench/receivers.py).

- `bench.noop`, a jobbridge job declared on the inbox app's registry exactly as tasks/
  declares its jobs, so that the worker runs it through the whole jobbridge task path
  (bridge/celery/tasks.py: limits check, attempt bookkeeping, run_job's validation,
  classification and log line);
- `bench.raw-noop`, a plain Celery task on the same Celery app, taking the same payload.

Both run in the same worker, under the same configuration (acks late, prefetch 1, task
events, the prefix on Redis); only the path around the no-op differs. Bench-only: this
module is imported by the bench and its worker, never by tasks/ or a deployment.
"""

from __future__ import annotations

from typing import Any

import tasks
from bridge.outcome import Delivery, Result, done
from bridge.payload import Payload
from tasks.shim import registry

NOOP_EVENT = "inbox-zero/bench.noop"
RAW_NOOP = "bench.raw-noop"


class Noop(Payload):
    number: int = 0


def noop(payload: Noop, delivery: Delivery) -> Result:
    return done()


# Declared before the Celery app finalizes (when the worker starts), like every job.
noop_job = registry.job(event=NOOP_EVENT, route="/api/bench/noop", payload=Noop)(noop)

app = tasks.app


@app.task(name=RAW_NOOP, shared=False)
def raw_noop(payload: dict[str, Any]) -> None:
    return None
