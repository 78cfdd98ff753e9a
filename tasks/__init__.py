"""The inbox app on the shim: its jobs, its Celery app and its commands.

`celery -A tasks worker` finds the Celery app here as `app`; the shim finds `registry`
(the jobs and crons), `commands`, `add_routes`, `audit`, `prepare_dev` and
`settings_models` by the module name in JOBBRIDGE_APP (default `tasks`). Importing it
reads no environment.
"""

from __future__ import annotations

from bridge.celery.app import celery_app
from tasks import scheduled_actions
from tasks.api_routes import add_routes
from tasks.audit import audit
from tasks.cli import commands
from tasks.devstack import prepare_dev
from tasks.jobs import bulk_process, categorize, clean, digest
from tasks.settings_models import settings_models
from tasks.shim import registry

# Made after every job is declared above; Celery makes the tasks when it finalizes.
app = celery_app(registry)
celery = app  # the other name `celery -A tasks` looks for
JOBS = registry.jobs
CRONS = registry.crons

__all__ = [
    "CRONS",
    "JOBS",
    "add_routes",
    "app",
    "audit",
    "bulk_process",
    "categorize",
    "celery",
    "clean",
    "commands",
    "digest",
    "prepare_dev",
    "registry",
    "scheduled_actions",
    "settings_models",
]
