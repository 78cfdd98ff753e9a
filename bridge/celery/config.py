"""Celery's configuration, from Settings: the same for the workers and the publishers."""

from __future__ import annotations

from typing import Any

from config import Settings


def make_embedded_broker_folders(settings: Settings) -> None:
    """The embedded broker is folders on disk that every process using it creates:
    shared by every local process, remote control included so Flower and `celery
    inspect` see the workers. Nothing to make when REDIS_URL is set."""
    if not settings.redis_url:
        for sub in ("queue", "control", "processed"):
            (settings.broker_folder / sub).mkdir(parents=True, exist_ok=True)


def celery_config(settings: Settings) -> dict[str, Any]:
    transport: dict[str, Any] = {}
    if settings.redis_url:
        # kombu #337: keep every ETA below the visibility timeout (see the publisher's horizon).
        transport["visibility_timeout"] = settings.visibility_timeout_seconds
        if settings.redis_key_prefix:
            transport["global_keyprefix"] = settings.redis_key_prefix
    else:
        make_embedded_broker_folders(settings)
        folder = settings.broker_folder
        transport.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            control_folder=str(folder / "control"),
            processed_folder=str(folder / "processed"),
            store_processed=False,
        )
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        # Crash safety: a task is acked after it ran, and redelivered if its worker died.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A run whose broker connection dropped can no longer ack its message, which the
        # broker hands out again: stop the run rather than let both copies go on.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Flower learns only from events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_time_limit": settings.celery_hard_time_limit_seconds,
        "beat_schedule_filename": str(settings.data_dir.resolve() / "celerybeat-schedule"),
        "timezone": "UTC",
        "enable_utc": True,
    }
