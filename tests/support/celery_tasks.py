"""The inbox app's Celery task for a job, to run it eagerly (`.apply`) in a test."""

from __future__ import annotations

from typing import Any, cast

from celery import Task
from celery.result import AsyncResult

import tasks
from bridge.registry import JobSpec


def celery_task(spec: JobSpec[Any]) -> Task:  # type: ignore[type-arg]
    return tasks.app.tasks[spec.event]


def traceback_text(outcome: AsyncResult[Any]) -> str | None:
    """The traceback Celery kept for a failed run: the formatted text (celery-types types
    `traceback` as a TracebackType, which Celery never stores there)."""
    return cast("str | None", outcome.traceback)
