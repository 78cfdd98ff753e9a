"""The Inngest receiver: one function per job and per cron of the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import inngest

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome
from bridge.registry import CronSpec, JobSpec, Registry

# The replaced app's step id for the same sleep: a run it left sleeping resumes on this
# app with its sleep already memoised under this id, not planned a second time.
SLEEP_STEP_ID = "wait-for-scheduled-time"


def _wake_time(value: Any) -> datetime:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise inngest.NonRetriableError(
            f"invalid payload: scheduledFor: not a datetime: {value!r}"
        ) from None
    # step.sleep_until treats a naive datetime as local time: always hand it aware UTC.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
    )
    def handle(ctx: inngest.ContextSync) -> dict[str, Any]:
        # Inngest signs the body, not the function id in the query: a captured call must
        # not run as another function that takes the same payload.
        if ctx.event.name != spec.event:
            raise inngest.NonRetriableError(
                f"event {ctx.event.name!r} does not trigger {spec.fn_id} ({spec.event})"
            )
        data = dict(ctx.event.data)
        if spec.delayable and data.get("scheduledFor"):
            ctx.step.sleep_until(SLEEP_STEP_ID, _wake_time(data["scheduledFor"]))
        result = run_job(spec, data, Delivery("inngest", ctx.run_id, ctx.attempt))
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


def cron_function(client: inngest.Inngest, spec: CronSpec) -> inngest.Function[Any]:
    triggers: list[inngest.TriggerCron | inngest.TriggerEvent] = [
        inngest.TriggerCron(cron=spec.cron)
    ]
    triggers += [inngest.TriggerEvent(event=event) for event in spec.events]

    @client.create_function(fn_id=spec.fn_id, name=spec.name, trigger=triggers, retries=0)
    def handle(ctx: inngest.ContextSync) -> dict[str, Any]:
        return spec.body()

    return handle


def all_functions(client: inngest.Inngest, registry: Registry) -> list[inngest.Function[Any]]:
    return [job_function(client, spec) for spec in registry.jobs.values()] + [
        cron_function(client, spec) for spec in registry.crons.values()
    ]
