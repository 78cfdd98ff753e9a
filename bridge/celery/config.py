"""Celery's configuration, from Settings: the same for the workers and the publishers."""

from __future__ import annotations

from typing import Any

from bridge.celery.embedded_broker import TRANSPORT_PATH as EMBEDDED_TRANSPORT
from config import Settings
from config.exiting import unusable_folder

# How long a broker may leave a command, a connection attempt or a publish's confirm
# unanswered before the call fails (and a publish fails over). Over kombu's BRPOP
# timeout (1 s). A publish tries up to three times (RETRY_POLICY in
# bridge/celery/publisher.py), so a broker gone silent fails it within about 15 s.
BROKER_TIMEOUT_SECONDS = 5.0

# How often kombu checks a worker's long-lived Redis connections (its BRPOP and its
# remote-control subscription), and how long redis-py lets a pooled connection sit idle
# before a PING checks it. A worker waiting on a connection that went silent under it (a
# NAT or firewall that dropped its state) drops it and reconnects within 1 s + twice
# this: 11 s, where kombu's default of 25 s left it idle for up to 51 s.
BROKER_HEALTH_CHECK_SECONDS = 5

# How often a process using the embedded broker looks in its folders (kombu's default is
# 1 s). A remote-control request (Flower, `celery inspect`) waits 1 s for replies, and a
# worker looking once a second answered too late for it about as often as not on a busy
# machine; a job published also waited up to a second before a worker saw it.
EMBEDDED_POLLING_SECONDS = 0.1


def make_embedded_broker_folders(settings: Settings) -> None:
    """The embedded broker is folders on disk that every process using it creates:
    shared by every local process, remote control included so Flower and `celery
    inspect` see the workers. Nothing to make with BROKER_URL or REDIS_URL set."""
    if settings.broker_kind == "filesystem":
        try:
            for sub in ("queue", "control"):
                (settings.broker_folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise unusable_folder("DATA_DIR", error, "the embedded broker") from None


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's options for the broker BROKER_URL (or REDIS_URL) names."""
    if settings.broker_kind == "rabbitmq":
        # A publish returns once RabbitMQ has the message (publisher confirms): a receipt
        # means the job is in the broker, and a refused publish fails over (as does one
        # unconfirmed after BROKER_TIMEOUT_SECONDS: the publisher's). Nothing like
        # Redis's options below: unacked messages come back when their channel closes,
        # and deployments sharing a server are kept apart by virtual host (BROKER_URL's
        # path), which covers every queue and exchange Celery declares.
        return {"confirm_publish": True}
    if settings.broker_kind == "redis":
        # kombu #337: keep every ETA below the visibility timeout (see the publisher's horizon).
        options: dict[str, Any] = {
            "visibility_timeout": settings.visibility_timeout_seconds,
            # A worker looks for messages whose visibility timeout passed (a dead worker's)
            # every unacked_restore_interval (10 s) times this throttle: kombu's default of
            # 10 let them wait 100 s more before another worker could take them.
            "unacked_restore_throttle": 1,
            # kombu waits forever by default on a connection the broker stopped answering
            # without closing it (a failover, a NAT or firewall timeout): a publish would
            # hang, never failing over, and so would a worker's ack. The worker's BRPOP
            # is not affected (it is read by the event loop, and kombu itself drops one
            # overdue past its health check).
            "socket_timeout": BROKER_TIMEOUT_SECONDS,
            "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
            "health_check_interval": BROKER_HEALTH_CHECK_SECONDS,
        }
        if settings.redis_key_prefix:
            options["global_keyprefix"] = settings.redis_key_prefix
        return options
    make_embedded_broker_folders(settings)
    folder = settings.broker_folder
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "polling_interval": EMBEDDED_POLLING_SECONDS,
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    embedded = settings.broker_kind == "filesystem"
    return {
        "broker_url": settings.broker_url,
        # kombu's filesystem transport made safe for several processes at once.
        "broker_transport": EMBEDDED_TRANSPORT if embedded else None,
        "broker_transport_options": transport_options(settings),
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
        # Task events are what Flower learns from, and they cost every task three
        # publishes on the worker: off until a monitor asks. Flower does, every 5 s while
        # it runs (its enable_events option, on by default); `celery worker -E` keeps them
        # on for other monitors. The sent event is the publisher's own, sent to whoever
        # listens: kept, so Flower shows a task from the moment it is published.
        "worker_send_task_events": False,
        "task_send_sent_event": True,
        "task_time_limit": settings.celery_hard_time_limit_seconds,
        "beat_schedule_filename": str(settings.data_dir.resolve() / "celerybeat-schedule"),
        "timezone": "UTC",
        "enable_utc": True,
    }
