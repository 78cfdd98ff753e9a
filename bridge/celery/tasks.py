"""The Celery receiver: each declared job and cron becomes a task of the app's Celery app.

A job's Result becomes Celery's own vocabulary: return (done, skipped), retry with
countdown (retry), or a failure Celery will not retry (failed, or a retry with none
left), after the job's on_failure hook (bridge/failure_hooks.py).

A job with per-key limits (`concurrency=`, `throttle=`) takes a slot in Redis before it
runs (bridge/celery/limits.py) and, when its key is at the limit, comes back later as a new
message of the same delivery; see `come_back_later` for how that stays invisible to the
job and its retry budget.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject, Retry

from bridge.celery import limits
from bridge.core import backoff_seconds, run_job
from bridge.failure_hooks import call_on_failure
from bridge.outcome import Delivery, Outcome
from bridge.registry import CronSpec, JobSpec
from config import get_settings

log = logging.getLogger("jobbridge.celery")

# Between the soft limit (the job's timeout, raised inside the body) and the hard one
# (the pool kills the process): time for the body to clean up.
HARD_LIMIT_GRACE_SECONDS = 30
# Message headers that carry a delivery's history from one of its messages to the next
# (Celery copies custom headers into a retry's message, and we do into a deferral's):
# redeliveries: how often a message of this delivery was requeued after its worker died;
# deferrals: how often it was sent back because its key was at its limit.
REDELIVERIES_HEADER = "jobbridge-redeliveries"
DEFERRALS_HEADER = "jobbridge-deferrals"
# A retry Celery could not publish is given back to the broker after this pause.
UNPUBLISHED_RETRY_PAUSE_SECONDS = 5.0
# hook-failures: how often its on_failure hook raised (see _give_up), at most HOOK_TRIES:
# backing off from 10 s to the ETA horizon, several hours of a database being away.
HOOK_FAILURES_HEADER = "jobbridge-hook-failures"
HOOK_TRIES = 10


class JobFailed(Exception):
    """A permanent failure, or retries used up: Celery records it and does not retry."""


class JobRetrying(Exception):
    """The reason attached to a Celery retry."""


class LimitReached(Exception):
    """The reason attached to a deferral: the job's per-key limit is full for now."""


def add_job_task(app: Celery, spec: JobSpec[Any]) -> None:
    """Declare the job's task on `app`; Celery makes it when the app is finalized."""
    policy = limits.policy_for(spec)

    # shared=False: the task belongs to this app alone, not to every Celery app in the
    # process (an app's jobs must not appear in another app's worker).
    @app.task(
        shared=False,
        name=spec.event,
        bind=True,
        max_retries=spec.retries,
        soft_time_limit=spec.timeout_seconds,
        time_limit=spec.timeout_seconds + HARD_LIMIT_GRACE_SECONDS,
        # A delivery that failed for good is an outcome, not a crash: the worker logs it
        # in one line ("raised expected"), without a traceback of this wrapper (an
        # unexpected error in the job is logged with its own by the core).
        throws=(JobFailed,),
    )
    def run(self: Task, payload: dict[str, Any]) -> str:  # type: ignore[type-arg]
        request = self.request
        horizon = get_settings().celery_eta_horizon_seconds
        # A message requeued because its worker died is a later attempt of the same
        # delivery; deferrals carry the count along in a header (see come_back_later).
        redelivered = bool((request.delivery_info or {}).get("redelivered"))
        redeliveries = header_count(request, REDELIVERIES_HEADER) + int(redelivered)
        attempt = int(request.retries or 0) + redeliveries
        delivery = Delivery("celery", str(request.id), attempt, redeliveries > 0)
        value = limited_key(spec, policy, payload)
        token = ""  # this run's claim on the key's slot, when it needs one
        if policy and value is not None:
            token = uuid.uuid4().hex
            start_or_come_back_later(self, policy, value, token, redeliveries, horizon)
        try:
            result = run_job(spec, payload, delivery)
            if result.outcome is Outcome.FAILED:
                raise _give_up(self, spec, payload, delivery, result.detail, redeliveries)
            if result.outcome is Outcome.RETRY:
                if self.request.retries >= spec.retries:
                    detail = f"gave up after {attempt + 1} attempts: {result.detail}"
                    raise _give_up(self, spec, payload, delivery, detail, redeliveries)
                countdown = result.retry_after or backoff_seconds(attempt, cap=horizon)
                try:
                    raise self.retry(
                        countdown=min(countdown, horizon),
                        exc=JobRetrying(result.detail),
                        headers=carried_headers(request, redeliveries, deferrals=0),
                    )
                except Reject as unpublished:
                    # Celery could not publish the retry (the broker is away) and would
                    # drop this message for good: give it back instead, as a redelivery,
                    # after a pause (a broker refusing publishes may still hand it out).
                    time.sleep(UNPUBLISHED_RETRY_PAUSE_SECONDS)
                    raise Reject(
                        unpublished.args[0] if unpublished.args else None, requeue=True
                    ) from None
            return result.summary
        finally:
            # Every way out gives the slot back: done, failed, retrying, or any exception
            # (the soft time limit included). Only a killed process cannot: its lease expires.
            if policy and value is not None:
                release_slot(policy, value, token)


def _give_up(
    task: Task,  # type: ignore[type-arg]
    spec: JobSpec[Any],
    payload: dict[str, Any],
    delivery: Delivery,
    detail: str,
    redeliveries: int,
) -> JobFailed:
    """The delivery failed for good: run the job's on_failure hook, once per task id (a
    message redelivered after its worker died between the hook and the ack does not run
    it again), then hand back the JobFailed to raise. A time limit that interrupted the
    body on the last attempt arrives here too, as a RETRY: run_job caught it.

    A hook that raises (its database is away) has not recorded the failure, and nothing
    else would: the delivery comes back later (`come_back_later`, HOOK_TRIES times at
    most, backing off), runs again and, failing again, tries its hook again."""
    try:
        call_on_failure(
            spec, payload, detail, provider=delivery.provider, delivery_id=delivery.delivery_id
        )
    except Exception as error:
        tries = header_count(task.request, HOOK_FAILURES_HEADER) + 1
        if tries >= HOOK_TRIES:
            log.exception(
                "%s on_failure raised %d times; %s stays failed",
                spec.event,
                tries,
                delivery.delivery_id,
            )
            return JobFailed(detail)
        horizon = get_settings().celery_eta_horizon_seconds
        reason = f"{spec.event} on_failure raised: {type(error).__name__}: {error}"
        log.warning("%s[%s]: %s; comes back later", task.name, delivery.delivery_id, reason)
        headers = {HOOK_FAILURES_HEADER: str(tries)}
        countdown = backoff_seconds(tries - 1, cap=horizon)
        raise come_back_later(task, countdown, reason, redeliveries, 0, headers) from None
    return JobFailed(detail)


def limited_key(spec: JobSpec[Any], policy: limits.Policy | None, payload: Any) -> str | None:
    """The value this run's limits apply to, or None when nothing is to be counted: the
    job has no limits; there is no Redis to count in (the embedded broker: the worker
    says at start that limits are off); or the key is missing or malformed, and then
    run_job rejects the payload for what it is."""
    if policy is None or not get_settings().redis_url:
        return None
    value = payload.get(spec.key) if isinstance(payload, dict) else None
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def header_count(request: Any, name: str) -> int:
    try:
        return int((request.headers or {}).get(name) or 0)
    except (TypeError, ValueError):
        return 0


def carried_headers(
    request: Any, redeliveries: int, deferrals: int, more: dict[str, str] | None = None
) -> dict[str, Any]:
    """The headers of the delivery's next message: what this one had, plus its history."""
    return {
        **(request.headers or {}),
        REDELIVERIES_HEADER: str(redeliveries),
        DEFERRALS_HEADER: str(deferrals),
        **(more or {}),
    }


def _hard_time_limit(task: Task) -> float:  # type: ignore[type-arg]
    """What the pool enforces for this run: the message's own limit, else the task's."""
    from_message = (task.request.timelimit or (None, None))[0]
    limit = from_message or task.time_limit or task.app.conf.task_time_limit
    return float(limit or get_settings().celery_hard_time_limit_seconds)


def start_or_come_back_later(
    task: Task,  # type: ignore[type-arg]
    policy: limits.Policy,
    value: str,
    token: str,
    redeliveries: int,
    horizon: float,
) -> None:
    lease = limits.lease_seconds(_hard_time_limit(task))
    try:
        decision = limits.try_start(policy, value, token, lease)
    except redis.RedisError as error:
        # Fail closed: a limit protects someone (an API quota, a mailbox), and running
        # unlimited while Redis cannot count is breaking it exactly when things go wrong.
        decision = limits.Decision(False, f"limits unavailable: {type(error).__name__}: {error}")
    if decision.admitted:
        return
    deferrals = header_count(task.request, DEFERRALS_HEADER)
    # A long throttle period may say "come back tomorrow": no ETA beyond the horizon
    # (kombu #337, see bridge/celery/deferred.py), so it asks again at the horizon instead.
    countdown = round(min(limits.come_back_in(decision, deferrals), horizon), 3)
    reason = f"{policy.fn_id} {decision.reason or 'full'} for {value}"
    raise come_back_later(task, countdown, reason, redeliveries, deferrals + 1)


def come_back_later(
    task: Task,  # type: ignore[type-arg]
    countdown: float,
    reason: str,
    redeliveries: int,
    deferrals: int,
    headers: dict[str, str] | None = None,
) -> Retry:
    """Send the delivery back to the queue for later, as if it had not been taken yet.

    `self.retry()` would do almost this, but it numbers the new message retries + 1:
    waiting for a slot would use up the job's retry budget (max_retries) and change the
    attempt its body sees, and a run refused a slot never started the body. So this
    publishes the same message the way retry() does (same task id, so the same
    delivery id; same queue, args and time limits) but with the same `retries`, and
    with the redeliveries so far in a header, because the new message is a fresh one
    that Celery does not flag as redelivered: a redelivery that had to wait for a slot
    (likely, since its dead predecessor's lease still holds one) keeps its attempt
    number when it finally runs. Raising Retry then makes the worker ack this message
    and record the task as retrying, like a retry.

    If the worker dies between the publish and the ack, the delivery exists twice: the
    same duplicate a plain retry can make, harmless because jobs are idempotent.
    """
    request = task.request
    signature = task.signature_from_request(
        request,
        countdown=countdown,
        retries=request.retries,
        headers=carried_headers(request, redeliveries, deferrals, headers),
    )
    try:
        signature.apply_async()
    except Exception as error:
        # Not published: give this message back rather than lose it (retry() would
        # reject it for good). If even that fails the broker's visibility timeout does.
        # Either way it comes back flagged redelivered, one attempt higher than it
        # should be: an attempt number may overstate, never understate, what ran.
        raise Reject(error, requeue=True) from error
    log.debug("%s[%s] waits %.3fs: %s", task.name, request.id, countdown, reason)
    return Retry(exc=LimitReached(reason), when=countdown, sig=signature)  # type: ignore[arg-type]


def release_slot(policy: limits.Policy, value: str, token: str) -> None:
    try:
        limits.release(policy, value, token)
    except redis.RedisError as error:
        # The run's outcome stands; the slot comes back when its lease expires.
        log.warning("could not release %s slot %s for %s: %s", policy.fn_id, token, value, error)


def add_cron_task(app: Celery, spec: CronSpec) -> None:
    @app.task(name=cron_task_name(spec), shared=False)
    def run() -> dict[str, Any]:
        return spec.body()


def cron_task_name(spec: CronSpec) -> str:
    return f"cron.{spec.name}"
