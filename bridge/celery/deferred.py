"""Celery jobs due beyond the ETA horizon wait in the database, not in the broker.

A worker takes an ETA message as soon as it is published and holds it, unacked, until
the ETA and then while it runs. On Redis, kombu #337: one held past the visibility
timeout is redelivered again and again. On RabbitMQ, a delivery unacked past the
server's consumer_timeout (30 minutes by default) gets its channel closed with
PRECONDITION_FAILED, which workers are reported to die of (celery #6760). So the Celery
publisher stores far-future jobs here, and this cron publishes each one with an ETA once
it comes within the horizon, which Settings keep under either limit
(`visibility_timeout_seconds`; config/broker.py on RabbitMQ). Publish, then delete: a
crash in between publishes twice (harmless, jobs are idempotent), never zero times.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bridge.celery.producer import producer_app
from bridge.registry import CronSpec, Registry
from bridge.store.columns import utcnow
from bridge.store.db import rows_changed, session_scope
from bridge.store.tables import DeferredJob
from config import get_settings


def defer(event: str, payload: dict[str, Any], due_at: datetime, dedup_id: str) -> bool:
    """Store a far-future job; False if one with this dedup id is already waiting."""
    try:
        with session_scope() as session:
            if session.get(DeferredJob, dedup_id) is not None:
                return False
            session.add(DeferredJob(dedup_id=dedup_id, event=event, payload=payload, due_at=due_at))
    except IntegrityError:
        return False  # a concurrent publish of the same dedup id stored it first
    return True


def discard(dedup_id: str) -> bool:
    with session_scope() as session:
        statement = delete(DeferredJob).where(DeferredJob.dedup_id == dedup_id)
        return rows_changed(session, statement) == 1


def release_due(events: Collection[str], now: datetime | None = None, limit: int = 1000) -> int:
    """Publish the stored jobs of these events (one app's) that come within the horizon."""
    now = now or utcnow()
    settings = get_settings()
    horizon = now + timedelta(seconds=settings.celery_eta_horizon_seconds)
    with session_scope() as session:
        rows = session.scalars(
            select(DeferredJob)
            .where(DeferredJob.due_at <= horizon, DeferredJob.event.in_(events))
            .order_by(DeferredJob.due_at)
            .limit(limit)
        ).all()
    celery = producer_app(settings)
    for row in rows:
        celery.send_task(
            row.event,
            kwargs={"payload": row.payload},
            task_id=row.dedup_id,
            eta=row.due_at if row.due_at > now else None,
        )
        discard(row.dedup_id)
    return len(rows)


RELEASE_DEFERRED = "celery.release-deferred"


def release_deferred_cron(registry: Registry) -> CronSpec:
    """The shim's own cron, in every app's registry (bridge.apps): it releases that app's
    jobs only, so apps sharing a database never publish each other's."""

    def release_deferred_jobs() -> dict[str, Any]:
        return {"released": release_due(list(registry.jobs))}

    return CronSpec(
        name=RELEASE_DEFERRED,
        cron="* * * * *",
        route="/api/jobs/release-deferred",
        body=release_deferred_jobs,
    )
