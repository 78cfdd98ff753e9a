"""A worker or beat on RabbitMQ whose login RabbitMQ refuses stops at once, in two plain
lines naming the broker and the fix: Celery itself ends it with "Unrecoverable error"
and a traceback (the worker), or a traceback split over a thousand log lines (beat), and
retries a missing virtual host forever. A broker that cannot be reached is left to
Celery, which says so in one line and retries until it can."""

from __future__ import annotations

import sys
from typing import Any

from amqp.exceptions import AccessRefused, NotAllowed
from celery import Celery
from celery.signals import beat_init, worker_init
from kombu import Connection

from config import get_settings
from config.broker import redacted_url

LOGIN_TIMEOUT_SECONDS = 10.0
LOGIN_FIX = (
    "correct the user, password or virtual host in BROKER_URL (a virtual host must exist, "
    "and the user be let in: rabbitmqctl add_vhost, set_permissions)"
)


def stop_on_a_refused_login() -> None:
    """SystemExit(1) after two lines on stderr when RabbitMQ refuses the broker's login:
    a wrong user or password (403 ACCESS_REFUSED), or a virtual host that does not exist
    or the user may not use (530 NOT_ALLOWED). No retry mends either."""
    settings = get_settings()
    if settings.broker_kind != "rabbitmq":
        return
    connection = Connection(settings.broker_url, connect_timeout=LOGIN_TIMEOUT_SECONDS)
    try:
        connection.ensure_connection(max_retries=0)  # one attempt, as a worker makes
    except (AccessRefused, NotAllowed) as refusal:
        where = redacted_url(settings.broker_url)
        sys.stderr.write(f"cannot log in to RabbitMQ at {where}: {refusal}\nfix: {LOGIN_FIX}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None
    except Exception:  # unreachable and the like: Celery reports it and retries
        return
    finally:
        connection.release()


def connect_login_check(app: Celery) -> None:
    """Check the login when this app's worker or beat starts, before either connects."""

    def on_start(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            stop_on_a_refused_login()

    worker_init.connect(on_start, weak=False)
    beat_init.connect(on_start, weak=False)
