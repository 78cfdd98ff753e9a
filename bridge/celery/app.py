"""The worker's Celery app for an app's registry: `celery -A tasks worker|beat|flower`.

Made without reading the environment: Celery reads its configuration when it first needs
it (a worker or beat starting, a task being sent), and that is when Settings are read,
so a bad environment ends the process there with the plain message and exit status 2.
The tasks are made from the registry when the app is finalized (Celery's own moment for
it); from then on the registry takes no more declarations, so the worker's tasks, the
beat schedule and the web app's routes never disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_ready

from bridge.apps import with_shim_crons
from bridge.celery.batches import add_batch_task
from bridge.celery.config import celery_config
from bridge.celery.login_check import connect_login_check
from bridge.celery.tasks import add_cron_task, add_job_task, cron_task_name
from bridge.heap import freeze_startup_heap
from bridge.logs import JsonFormatter
from bridge.metrics_celery import connect_worker_metrics
from bridge.registry import CronSpec, Registry
from config import ConfigError, get_settings
from config.exiting import exit_plainly, get_settings_or_exit

log = logging.getLogger("jobbridge.celery")


class _ConfigFromSettings(Mapping[str, Any]):
    """Celery's configuration source, computed on first read."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @cached_property
    def _values(self) -> dict[str, Any]:
        settings = get_settings_or_exit()
        self._registry.close()  # the schedule below is final: later declarations fail
        schedule = {spec.name: _beat_entry(spec) for spec in self._registry.crons.values()}
        try:
            return {**celery_config(settings), "beat_schedule": schedule}
        except ConfigError as error:  # e.g. a DATA_DIR the embedded broker cannot use
            exit_plainly(error)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _beat_entry(spec: CronSpec) -> dict[str, Any]:
    minute, hour, day_of_month, month_of_year, day_of_week = spec.cron.split()
    return {
        "task": cron_task_name(spec),
        "schedule": crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        ),
    }


class RegistryCelery(Celery):
    """A Celery app whose tasks are a registry's jobs and crons, made when it finalizes."""

    def __init__(self, registry: Registry, main: str) -> None:
        super().__init__(main)
        self.registry = registry

    def finalize(self, auto: bool = False) -> None:
        with self._finalize_mutex:  # type: ignore[attr-defined]  # Celery's own, untyped
            if not self.finalized:  # type: ignore[attr-defined]
                self.registry.close()  # the tasks below are final: later declarations fail
                for spec in self.registry.jobs.values():
                    add_job_task(self, spec)
                    add_batch_task(self, spec)
                for cron in self.registry.crons.values():
                    add_cron_task(self, cron)
            super().finalize(auto)


def celery_app(registry: Registry, main: str = "jobbridge") -> Celery:
    """The Celery app that runs every job and cron of `registry`. Reads nothing now: the
    configuration when Celery first needs it, the tasks when it finalizes."""
    with_shim_crons(registry)
    app = RegistryCelery(registry, main)
    app.config_from_object(_ConfigFromSettings(registry))

    def on_worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:  # this app's worker, not another's
            say_when_limits_are_off(registry)

    def on_worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            # In the main process, before the pool forks: the children inherit it frozen.
            freeze_startup_heap()

    worker_init.connect(on_worker_init, weak=False)
    worker_ready.connect(on_worker_ready, weak=False)
    connect_worker_metrics(app)
    connect_login_check(app)
    after_setup_logger.connect(_log_format_of_settings, weak=False)
    after_setup_task_logger.connect(_log_format_of_settings, weak=False)
    return app


def _log_format_of_settings(logger: logging.Logger, **_: Any) -> None:
    """Celery sets up the worker's logging itself; LOG_FORMAT=json then swaps in the
    JSON formatter (bridge.logs) on the handlers it made."""
    if get_settings().log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())


def say_when_limits_are_off(registry: Registry) -> None:
    """The per-key limits live in Redis: on the embedded broker nothing enforces them."""
    limited = sorted(spec.name for spec in registry.jobs.values() if spec.limited_by_key)
    if limited and not get_settings().redis_url:
        log.warning(
            "per-key limits (concurrency, throttle) are NOT enforced without REDIS_URL: %s",
            ", ".join(limited),
        )
