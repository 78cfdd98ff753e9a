"""The inbox app's Celery task for a job, to run it eagerly (`.apply`) in a test."""

from __future__ import annotations

from typing import Any

from celery import Task

import tasks
from bridge.registry import JobSpec


def celery_task(spec: JobSpec[Any]) -> Task:  # type: ignore[type-arg]
    return tasks.app.tasks[spec.event]
