"""The Inngest receiver: one function per job and per cron of the registry.

A job with an `on_failure` hook also gets the SDK's failure function
(`<app>-<fn>-failure`, on `inngest/function.failed`: the run failed for good, by a
NonRetriableError or with its retries used up) and, when it has a finish timeout, a
function of ours (`<app>-<fn>-timed-out`): Inngest ends a run its finish timeout cancels
as cancelled, and sends `inngest/function.cancelled` for it, not `function.failed`.

The handlers are async: the SDK runs them on the event loop, and each hands its sync
work (the job, the hook, the cron) to the process's delivery threads, the same ones the
job routes use (bridge/threads.py), in their turn. A sync handler would run in the
SDK's own thread pool instead, which starts calls as they come, as many as it has
threads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import inngest

from bridge.core import early_result, run_job
from bridge.db_errors import log_failure, told_outside
from bridge.failure_hooks import call_on_failure
from bridge.outcome import Delivery, Outcome
from bridge.registry import CronSpec, JobSpec, Registry
from bridge.threads import in_delivery_thread

# The replaced app's step id for the same sleep: a run it left sleeping resumes on this
# app with its sleep already memoised under this id, not planned a second time.
SLEEP_STEP_ID = "wait-for-scheduled-time"
# What Inngest sends when a run ends cancelled: by a finish timeout, a `cancel` event,
# or an operator (pkg/execution/executor/finalize.go in inngest/inngest).
FUNCTION_CANCELLED = "inngest/function.cancelled"
TIMED_OUT_SUFFIX = "-timed-out"
log = logging.getLogger("jobbridge.inngest")
T = TypeVar("T")
# The events Inngest itself runs a cron function with: its schedule's tick, and an
# invocation (the dashboard's "Invoke", step.invoke).
CRON_TICK = "inngest/scheduled.timer"
FUNCTION_INVOKED = "inngest/function.invoked"


def _wake_time(value: Any) -> datetime:
    try:
        when = datetime.fromisoformat(str(value))
        # step.sleep_until treats a naive datetime as local time: always hand it aware UTC.
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError:
        raise inngest.NonRetriableError(
            f"invalid payload: scheduledFor: not a datetime: {value!r}"
        ) from None
    except OverflowError:  # a time whose UTC falls outside years 1 to 9999
        raise inngest.NonRetriableError(
            f"invalid payload: scheduledFor: not a time UTC can hold: {value!r}"
        ) from None


def job_function(client: inngest.Inngest, spec: JobSpec[Any]) -> inngest.Function[Any]:
    key = f"event.data.{spec.key}"
    concurrency = (
        [inngest.Concurrency(limit=spec.concurrency, key=key)] if spec.concurrency else None
    )
    throttle = (
        inngest.Throttle(
            limit=spec.throttle.limit,
            period=timedelta(seconds=spec.throttle.period_seconds),
            key=key,
        )
        if spec.throttle
        else None
    )

    cancel = (
        [
            inngest.Cancel(
                event=spec.cancel_event,
                if_exp=f"event.data.{spec.cancel_key} == async.data.{spec.cancel_key}",
            )
        ]
        if spec.cancel_event and spec.cancel_key
        else None
    )

    @client.create_function(
        fn_id=spec.fn_id,
        name=spec.event,
        trigger=inngest.TriggerEvent(event=spec.event),
        cancel=cancel,
        retries=spec.retries,
        concurrency=concurrency,
        throttle=throttle,
        # Inngest counts a finish timeout from the run's start, sleeps included: a
        # delayable job's run lasts until its time, so only the others get one.
        timeouts=None
        if spec.delayable
        else inngest.Timeouts(finish=timedelta(seconds=spec.timeout_seconds)),
        on_failure=None if spec.on_failure is None else _failure_handler(spec),
    )
    async def handle(ctx: inngest.Context) -> dict[str, Any]:
        # Inngest signs the body, not the function id in the query: a captured call must
        # not run as another function that takes the same payload.
        if ctx.event.name != spec.event:
            raise inngest.NonRetriableError(
                f"event {ctx.event.name!r} does not trigger {spec.fn_id} ({spec.event})"
            )
        data = dict(ctx.event.data)
        if spec.delayable and data.get("scheduledFor"):
            await ctx.step.sleep_until(SLEEP_STEP_ID, _wake_time(data["scheduledFor"]))
        delivery = Delivery("inngest", ctx.run_id, ctx.attempt)
        result = await early_result(spec, data, delivery)
        if result is None:
            result = await in_delivery_thread(partial(run_job, spec, data, delivery))
        if result.outcome is Outcome.FAILED:
            raise inngest.NonRetriableError(result.detail)
        if result.outcome is Outcome.RETRY:
            if result.retry_after is not None:
                raise inngest.RetryAfterError(
                    result.detail, timedelta(seconds=max(1, round(result.retry_after)))
                )
            raise RuntimeError(result.detail)
        return {"outcome": result.outcome.value, "detail": result.detail}

    return handle


def _failure_handler(
    spec: JobSpec[Any],
) -> Callable[[inngest.Context], Awaitable[dict[str, Any]]]:
    """The SDK's failure function: `ctx.event` is the `inngest/function.failed` event,
    whose data holds the failed run's event, run id and error ({name, message, ...})."""

    async def on_failure(ctx: inngest.Context) -> dict[str, Any]:
        data = ctx.event.data
        error = _error_text(data.get("error"))
        return await _in_thread_told(
            f"failure function of {spec.fn_id}", partial(_failed_for_good, spec, data, error)
        )

    return on_failure


def timed_out_function(
    client: inngest.Inngest, spec: JobSpec[Any], main: inngest.Function[Any]
) -> inngest.Function[Any] | None:
    """The function that runs the hook when Inngest cancelled a run of `main` (its finish
    timeout): None for a job without a hook or a finish timeout, or with a `cancel_key`,
    whose cancel events end runs the same way: the event cannot tell them apart."""
    if spec.on_failure is None or spec.delayable or spec.cancel_key is not None:
        return None

    @client.create_function(
        fn_id=spec.fn_id + TIMED_OUT_SUFFIX,
        name=f"{spec.event} (timed out)",
        trigger=inngest.TriggerEvent(
            event=FUNCTION_CANCELLED, expression=f"event.data.function_id == '{main.id}'"
        ),
        # Retried, unlike the SDK's failure function: the ledger keeps the hook to once.
        retries=spec.retries,
    )
    async def handle(ctx: inngest.Context) -> dict[str, Any]:
        detail = _error_text(ctx.event.data.get("error"), "function cancelled")
        error = f"timed out: no result within {spec.timeout_seconds}s ({detail})"
        return await _in_thread_told(
            f"timed-out function of {spec.fn_id}",
            partial(_failed_for_good, spec, ctx.event.data, error),
        )

    return handle


async def _in_thread_told(what: str, call: Callable[[], T]) -> T:
    """`call` in a delivery thread. An error of its own goes back to Inngest as
    `told_outside` words it (a store's host and port stay in this log: `log_failure`),
    and is retried as the function's retries say; the SDK's own errors
    (NonRetriableError) pass as they are."""
    try:
        return await in_delivery_thread(call)
    except inngest.NonRetriableError:
        raise
    except Exception as error:
        log_failure(log, error, "%s failed", what)
        raise RuntimeError(told_outside(error)) from None


def _failed_for_good(spec: JobSpec[Any], data: Mapping[str, Any], error: str) -> dict[str, Any]:
    """Run the hook for the run a lifecycle event reports, once per run (its run id)."""
    original = data.get("event")
    # Signed, but the function id in the query is not: a captured call must not run the
    # hook of another job.
    if not isinstance(original, Mapping) or original.get("name") != spec.event:
        raise inngest.NonRetriableError(f"not a run of {spec.fn_id} ({spec.event})")
    payload = original.get("data")
    run_id = str(data.get("run_id") or "")
    ran = call_on_failure(
        spec,
        payload if isinstance(payload, Mapping) else {},
        error,
        provider="inngest",
        delivery_id=run_id,
        remember=bool(run_id),
    )
    return {"on_failure": "ran" if ran else "not run", "run_id": run_id}


def _error_text(error: Any, default: str = "failed") -> str:
    """The message of a lifecycle event's error: {name, message, stack?}, or the older
    {error, message, name} (the message then may be a stack)."""
    if not isinstance(error, Mapping):
        return default
    for field in ("message", "error", "name"):
        value = error.get(field)
        if isinstance(value, str) and value:
            return value
    return default


def cron_function(client: inngest.Inngest, spec: CronSpec) -> inngest.Function[Any]:
    triggers: list[inngest.TriggerCron | inngest.TriggerEvent] = [
        inngest.TriggerCron(cron=spec.cron)
    ]
    triggers += [inngest.TriggerEvent(event=event) for event in spec.events]

    fully_qualified_id = f"{client.app_id}-{spec.fn_id}"

    @client.create_function(fn_id=spec.fn_id, name=spec.name, trigger=triggers, retries=0)
    async def handle(ctx: inngest.Context) -> dict[str, Any]:
        # As for a job: the function id in the query is not signed, the event is. A tick
        # names its schedule (Inngest's cron event carries the expression it fired for),
        # so one cron's captured tick does not run a cron of another schedule; an
        # invocation names the function it invokes, so one cron's does not run another.
        event = ctx.event
        if event.name == CRON_TICK:
            runs = event.data.get("cron") == spec.cron
        elif event.name == FUNCTION_INVOKED:
            runs = invoked_function(event.data) == fully_qualified_id
        else:
            runs = event.name in spec.events
        if not runs:
            raise inngest.NonRetriableError(
                f"event {event.name!r} (cron {event.data.get('cron')!r}, invoking "
                f"{invoked_function(event.data)!r}) does not trigger {fully_qualified_id} "
                f"(cron {spec.name}, {spec.cron})"
            )
        return await _in_thread_told(f"cron {spec.name}", spec.body)

    return handle


def invoked_function(data: Mapping[str, Any]) -> str | None:
    """The function an `inngest/function.invoked` event invokes: the id the SDK and the
    dashboard name it by (`<app id>-<function id>`), in the metadata Inngest adds to the
    event's data (`_inngest.fn_id`, pkg/event/invoke.go in inngest/inngest). Inngest's
    REST API names it by its internal UUID instead, which this app cannot tell apart from
    another function's: such an invocation of a cron is refused, and says so."""
    metadata = data.get("_inngest")
    function = metadata.get("fn_id") if isinstance(metadata, Mapping) else None
    return function if isinstance(function, str) else None


def all_functions(client: inngest.Inngest, registry: Registry) -> list[inngest.Function[Any]]:
    functions: list[inngest.Function[Any]] = []
    for spec in registry.jobs.values():
        main = job_function(client, spec)
        timed_out = timed_out_function(client, spec, main)
        functions += [main] if timed_out is None else [main, timed_out]
    return functions + [cron_function(client, spec) for spec in registry.crons.values()]
