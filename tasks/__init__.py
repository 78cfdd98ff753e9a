"""The Celery app and every job. `celery -A tasks worker` imports this package."""

from __future__ import annotations

from tasks import deferred, jobs, scheduled_actions
from tasks.celery_app import app
from tasks.registry import CRONS, JOBS

celery = app  # the name `celery -A tasks` also looks for

__all__ = ["CRONS", "JOBS", "app", "celery", "deferred", "jobs", "scheduled_actions"]
