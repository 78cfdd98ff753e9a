"""The Celery adapter: each registered job and cron becomes a Celery task.

A job's Result becomes Celery's own vocabulary: return (done, skipped), retry with
countdown (retry), or a failure Celery will not retry (failed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Task
from celery.schedules import crontab

from config import get_settings
from tasks.celery_app import app
from tasks.core import backoff_seconds, run_job
from tasks.outcome import Delivery, Outcome

if TYPE_CHECKING:
    from tasks.registry import CronSpec, JobSpec


class JobFailed(Exception):
    """A permanent failure, or retries used up: Celery records it and does not retry."""


class JobRetrying(Exception):
    """The reason attached to a Celery retry."""


def celery_task_for_job(spec: JobSpec[Any]) -> Task:  # type: ignore[type-arg]
    horizon = get_settings().celery_eta_horizon_seconds

    @app.task(
        name=spec.event,
        bind=True,
        max_retries=spec.retries,
        soft_time_limit=spec.timeout_seconds,
        time_limit=spec.timeout_seconds + 30,
    )
    def run(self: Task, payload: dict[str, Any]) -> dict[str, str]:  # type: ignore[type-arg]
        # A message requeued because its worker died is a later attempt of the same delivery.
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        attempt = int(self.request.retries or 0) + int(redelivered)
        delivery = Delivery("celery", str(self.request.id), attempt)
        result = run_job(spec, payload, delivery)
        if result.outcome is Outcome.FAILED:
            raise JobFailed(result.detail)
        if result.outcome is Outcome.RETRY:
            if self.request.retries >= spec.retries:
                raise JobFailed(f"gave up after {attempt + 1} attempts: {result.detail}")
            countdown = result.retry_after or backoff_seconds(attempt, cap=horizon)
            raise self.retry(countdown=min(countdown, horizon), exc=JobRetrying(result.detail))
        return {"outcome": result.outcome.value, "detail": result.detail}

    return run


def celery_task_for_cron(spec: CronSpec) -> Task:  # type: ignore[type-arg]
    @app.task(name=f"cron.{spec.name}")
    def run() -> dict[str, Any]:
        return spec.body()

    minute, hour, day_of_month, month_of_year, day_of_week = spec.cron.split()
    app.conf.beat_schedule[spec.name] = {
        "task": f"cron.{spec.name}",
        "schedule": crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        ),
    }
    return run
