"""A job's `on_failure` hook: run once when a delivery has failed for good.

"For good" is a FAILED outcome (permanent, on any attempt), or a RETRY on the delivery's
last attempt (a time limit hit inside the body is a RETRY too). Each provider adapter
decides when that is and calls `call_on_failure`:

- Celery (bridge/celery/tasks.py): where the task raises JobFailed;
- Inngest (bridge/inngest/functions.py): the SDK's failure function, which Inngest
  triggers with `inngest/function.failed`, and a function of ours on
  `inngest/function.cancelled` for a run its finish timeout cancelled;
- QStash and direct HTTP (bridge/web/deliveries.py): FAILED, or RETRY on the caller's
  last attempt, before answering.

A hook that raises has not recorded the failure: Celery brings the delivery back later,
QStash and direct HTTP are answered a retry, Inngest retries its failure function.

The hook receives the payload validated: a payload that does not validate has nothing
to hand it, so the hook is not called. Once per delivery: the delivery ledger
(bridge/store/ledger.py) records that the hook ran, so a redelivery of the final
attempt does not run it again. It is an optimisation like the ledger itself: a hook
must still be idempotent (two copies of one message may fail at the same moment).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from bridge.registry import JobSpec
from bridge.store import ledger

log = logging.getLogger("jobbridge.failure_hooks")
# The ledger's outcome for a delivery whose hook ran.
FAILED_FOR_GOOD = "failed"


def call_on_failure(
    spec: JobSpec[Any],
    data: Mapping[str, Any],
    error: str,
    *,
    provider: str,
    delivery_id: str,
    remember: bool = True,
) -> bool:
    """Run the job's hook for this delivery unless it has none, the payload does not
    validate, or (with `remember`) the ledger says the delivery already ended. True when
    the hook ran. The hook's exceptions propagate: the caller decides what they mean."""
    hook = spec.on_failure
    if hook is None:
        return False
    try:
        payload = spec.payload.model_validate(data)
    except ValidationError:
        log.info(
            "%s failed for good on %s %s: payload invalid, no hook",
            spec.event,
            provider,
            delivery_id,
        )
        return False
    if remember and ledger.already_processed(provider, delivery_id, spec.event):
        log.info("%s on_failure already ran for %s %s", spec.event, provider, delivery_id)
        return False
    hook(payload, error)
    if remember:
        ledger.record_processed(provider, delivery_id, spec.event, FAILED_FOR_GOOD)
    return True
