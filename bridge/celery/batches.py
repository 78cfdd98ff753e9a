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

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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

log = logging.getLogger("jobbridge.celery")

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
        # Killed at its hard limit: back to the queue, not acked (its payloads would be
        # lost); a batch back more often than the job's retries is split (below).
        acks_on_failure_or_timeout=False,
    )
    def run(
        self: Task,  # type: ignore[type-arg]
        payloads: list[dict[str, Any]],
        ids: list[str | None] | None = None,
    ) -> dict[str, dict[str, int]]:
        request = self.request
        redelivered = bool((request.delivery_info or {}).get("redelivered"))
        redeliveries = header_count(request, REDELIVERIES_HEADER) + int(redelivered)
        delivery = Delivery("celery", str(request.id), redeliveries, redeliveries > 0)
        batch = _Batch(self, spec, payloads, ids or [None] * len(payloads), delivery)
        if redeliveries > spec.retries:
            # Cut short that often (a payload that kills its worker, say): each goes alone.
            log.warning("%s[%s] came back %d times: split", self.name, request.id, redeliveries)
            batch.split()
            return {"split": {"its batch kept coming back": len(payloads)}}
        # One key value per batch (the publisher groups by it): one slot for the batch.
        value = limited_key(spec, policy, payloads[0] if payloads else None)
        token = uuid.uuid4().hex
        if policy and value is not None:
            horizon = get_settings().celery_eta_horizon_seconds
            start_or_come_back_later(self, policy, value, token, redeliveries, horizon)
        try:
            results = run_batch(spec, payloads, delivery)
        finally:
            if policy and value is not None:
                release_slot(policy, value, token)
        batch.settle(results)
        return _tally(results)


class _Batch:
    """A batch message's payloads, and how each is settled as its own message would be."""

    def __init__(
        self,
        task: Task,  # type: ignore[type-arg]
        spec: JobSpec[Any],
        payloads: Sequence[dict[str, Any]],
        ids: Sequence[str | None],
        delivery: Delivery,
    ) -> None:
        self.task, self.spec, self.payloads, self.delivery = task, spec, payloads, delivery
        # Each payload's own id (its dedup id, as it would have had alone), else its place.
        self.ids = [
            one or f"{delivery.delivery_id}.{index}"
            for index, one in enumerate([*ids, *[None] * (len(payloads) - len(ids))])
        ]

    def settle(self, results: Sequence[Result]) -> None:
        """Each payload's outcome. Anything that cannot be done here (a hook that raises)
        is left to a message of the payload's own; anything that goes wrong on the way
        (a publish the broker refuses, a time limit) gives the whole batch back, whose
        settled payloads are no-ops when it comes again."""
        with _given_back_whole_on_error():
            for index, result in enumerate(results):
                if result.outcome is Outcome.RETRY and self.spec.retries > 0:
                    self._alone(index, result.retry_after)
                elif result.outcome in (Outcome.RETRY, Outcome.FAILED):
                    self._give_up(index, result)

    def split(self) -> None:
        """Every payload as an ordinary message of its own, unrun here: each then runs,
        retries and gives up as a delivery alone does."""
        with _given_back_whole_on_error():
            for index in range(len(self.payloads)):
                self._alone(index, None, retries=0)

    def _give_up(self, index: int, result: Result) -> None:
        detail = (
            f"gave up after {self.delivery.attempt + 1} attempts: {result.detail}"
            if result.outcome is Outcome.RETRY
            else result.detail
        )
        payload, one_id = self.payloads[index], self.ids[index]
        try:
            call_on_failure(
                self.spec, payload, detail, provider=self.delivery.provider, delivery_id=one_id
            )
        except Exception:
            # Not recorded: its own message fails again, and tries its hook again with
            # the tries and backoff an ordinary delivery's hook has.
            self._alone(index, None, retries=0, hook_failed=True)

    def _alone(
        self,
        index: int,
        countdown: float | None,
        *,
        retries: int = 1,
        hook_failed: bool = False,
    ) -> None:
        """The payload as an ordinary message of the job, its next attempt (after
        `countdown`, else the first backoff): `retries` as Celery counts them, the
        batch's redeliveries carried in their header."""
        headers = {REDELIVERIES_HEADER: str(self.delivery.attempt)}
        if hook_failed:
            headers[HOOK_FAILURES_HEADER] = "1"
        horizon = get_settings().celery_eta_horizon_seconds
        self.task.app.send_task(
            self.spec.event,
            kwargs={"payload": self.payloads[index]},
            task_id=self.ids[index],
            countdown=min(countdown or backoff_seconds(0, cap=horizon), horizon),
            retries=retries,
            headers=headers,
        )


@contextmanager
def _given_back_whole_on_error() -> Iterator[None]:
    """Anything that goes wrong settling a batch (a publish the broker refuses, a time
    limit) gives the message back to the queue, after a pause: Celery would drop it."""
    try:
        yield
    except Exception as error:  # SoftTimeLimitExceeded included
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
