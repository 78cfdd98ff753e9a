"""The Celery app that publishes: configured at once from Settings, with no tasks of its own.

Publishing sends a task by name (`send_task`), so a process that only enqueues (the web
app, the CLI, a job on another provider) never builds the worker's tasks.
"""

from __future__ import annotations

from celery import Celery

from bridge.celery.config import celery_config
from config import Settings

_producers: dict[int, tuple[Settings, Celery]] = {}


def producer_app(settings: Settings) -> Celery:
    """One per Settings object, so connections are pooled and reused."""
    cached = _producers.get(id(settings))
    if cached is None or cached[0] is not settings:
        cached = (settings, new_celery(settings))
        _producers[id(settings)] = cached
    return cached[1]


def new_celery(settings: Settings) -> Celery:
    """A Celery app of its own for `settings`, with no tasks: to publish or to ask workers."""
    app = Celery("jobbridge", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
