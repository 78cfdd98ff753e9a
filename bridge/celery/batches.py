"""Celery batches: many deliveries of one job, one key value, in one message.

A job declared with `batch_body` gets a second task, `<event>#batch`, beside its own.
`CeleryPublisher` publishes the payloads of one `enqueue_many` call that share a key
value (the job's `key`, the account) as messages of that task, at most BATCH_MAX
payloads each; everything else, and every other provider, stays one message per
delivery. A batch costs one broker message, one hand-over to the pool, one ack and one
per-key slot, and its body can read and write what the payloads share once.

Each payload keeps its own outcome:
- done and skipped are the batch's success;
- failed runs the job's on_failure hook for that payload alone;
- retry publishes that payload alone, as the next attempt of an ordinary message of the
  job (its retry budget and backoff, its limits), or gives it up when none is left.
A batch body that raises makes every payload a retry (bridge/core.py, `run_batch`), so a
batch that meets a time limit or a database blip is split into its deliveries.

At least once: the message is acknowledged after the batch, like every task (late
acks). A worker killed mid-batch gets the whole batch redelivered; a batch body must
therefore make a repeated payload a no-op, as every body must a repeated delivery. A
failed or unpublished re-publish gives the whole message back (`Reject(requeue=True)`),
with the same consequence.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject

from bridge.celery import limits
from bridge.celery.tasks import (
    HARD_LIMIT_GRACE_SECONDS,
    HOOK_FAILURES_HEADER,
    REDELIVERIES_HEADER,
    UNPUBLISHED_RETRY_PAUSE_SECONDS,
    header_count,
    limited_key,
    release_slot,
    start_or_come_back_later,
)
from bridge.core import backoff_seconds, run_batch
from bridge.failure_hooks import call_on_failure
from bridge.outcome import Delivery, Outcome, Result
from bridge.registry import JobSpec
from config import get_settings

# Payloads per batch message: a bulk page's worth. Bounds what a redelivered batch
# repeats and how long one pool process holds the key's slot.
BATCH_MAX = 25


def batch_task_name(spec: JobSpec[Any]) -> str:
    """`#` appears in no event name, so no job's own task can have this name."""
    return f"{spec.event}#batch"


def add_batch_task(app: Celery, spec: JobSpec[Any]) -> None:
    """Declare the job's batch task on `app` (a job without a batch_body has none)."""
    if spec.batch_body is None:
        return
    policy = limits.policy_for(spec)

    @app.task(
        shared=False,
        name=batch_task_name(spec),
        bind=True,
        max_retries=0,  # a batch is never retried as a whole: its payloads are, alone
        soft_time_limit=spec.timeout_seconds,
        time_limit=spec.timeout_seconds + HARD_LIMIT_GRACE_SECONDS,
    )
    def run(self: Task, payloads: list[dict[str, Any]]) -> dict[str, dict[str, int]]:  # type: ignore[type-arg]
        request = self.request
        redelivered = bool((request.delivery_info or {}).get("redelivered"))
        redeliveries = header_count(request, REDELIVERIES_HEADER) + int(redelivered)
        delivery = Delivery("celery", str(request.id), redeliveries, redeliveries > 0)
        # One key value per batch (the publisher groups by it): one slot for the batch.
        value = limited_key(spec, policy, payloads[0] if payloads else None)
        token = uuid.uuid4().hex
        horizon = get_settings().celery_eta_horizon_seconds
        if policy and value is not None:
            start_or_come_back_later(self, policy, value, token, redeliveries, horizon)
        try:
            results = run_batch(spec, payloads, delivery)
        finally:
            if policy and value is not None:
                release_slot(policy, value, token)
        _settle(self, spec, payloads, results, delivery, horizon)
        return _tally(results)


def _settle(
    task: Task,  # type: ignore[type-arg]
    spec: JobSpec[Any],
    payloads: Sequence[dict[str, Any]],
    results: Sequence[Result],
    delivery: Delivery,
    horizon: float,
) -> None:
    """Each payload's outcome, as its own message would have had it. Anything that
    cannot be done (a hook that raises, a publish the broker refuses) is left to a
    message of its own, or to the whole batch again."""
    attempt = delivery.attempt
    try:
        for index, (payload, result) in enumerate(zip(payloads, results, strict=True)):
            one_id = f"{delivery.delivery_id}.{index}"
            if result.outcome is Outcome.RETRY and attempt < spec.retries:
                countdown = result.retry_after or backoff_seconds(attempt, cap=horizon)
                task.app.send_task(
                    spec.event,
                    kwargs={"payload": payload},
                    task_id=one_id,
                    countdown=min(countdown, horizon),
                    retries=attempt + 1,
                )
            elif result.outcome in (Outcome.RETRY, Outcome.FAILED):
                detail = (
                    f"gave up after {attempt + 1} attempts: {result.detail}"
                    if result.outcome is Outcome.RETRY
                    else result.detail
                )
                try:
                    call_on_failure(
                        spec, payload, detail, provider=delivery.provider, delivery_id=one_id
                    )
                except Exception:
                    # Not recorded: its own message fails again, and tries its hook again
                    # with the tries and backoff an ordinary delivery's hook has.
                    task.app.send_task(
                        spec.event,
                        kwargs={"payload": payload},
                        task_id=one_id,
                        countdown=backoff_seconds(0, cap=horizon),
                        retries=attempt,
                        headers={HOOK_FAILURES_HEADER: "1"},
                    )
    except Exception as error:
        # A re-publish the broker refused: the whole batch comes back (its done payloads
        # are no-ops then), after a pause, as Celery would not give it back itself.
        time.sleep(UNPUBLISHED_RETRY_PAUSE_SECONDS)
        raise Reject(error, requeue=True) from error


def _tally(results: Sequence[Result]) -> dict[str, dict[str, int]]:
    """What the worker logs (and Flower shows) as the batch's return value: for each
    outcome, how many payloads had each detail."""
    counts: dict[str, dict[str, int]] = {}
    for result in results:
        details = counts.setdefault(result.outcome.value, {})
        details[result.detail] = details.get(result.detail, 0) + 1
    return counts
