"""RabbitMQ for the tests that run Celery on it: a virtual host of its own per test.

A vhost keeps apart everything Celery declares there (its task queue, the remote-control
and event exchanges, the workers' reply queues), which no queue-name prefix does; deleting
it deletes all of it. `rabbitmqctl` makes it, lets the test user in, and deletes it: it
talks to the local node as root, as scripts/ensure-services.sh and CI run. The queue
depths come from rabbitmqctl too, which asks the queue itself (AMQP can count the ready
messages only, not the ones a worker holds unacked).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

TEST_RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
RABBITMQCTL = os.environ.get("RABBITMQCTL", "rabbitmqctl")
# Celery's default queue: where every job of the `tasks` app goes.
CELERY_QUEUE = "celery"


def rabbitmqctl(*arguments: str) -> str:
    done = subprocess.run(
        [RABBITMQCTL, "-q", *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise AssertionError(
            f"rabbitmqctl {' '.join(arguments)} exited {done.returncode} (is RabbitMQ up and "
            f"this user root? bash scripts/ensure-services.sh):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


@dataclass(frozen=True)
class QueueDepth:
    ready: int  # waiting in the queue
    unacked: int  # delivered to a consumer that has not acked them yet


@dataclass(frozen=True)
class Vhost:
    name: str
    url: str  # BROKER_URL for it

    def depth(self, queue: str = CELERY_QUEUE) -> QueueDepth:
        """The queue's counts now (both 0 while it does not exist)."""
        listed = rabbitmqctl(
            "list_queues",
            "-p",
            self.name,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--formatter",
            "json",
        )
        for row in json.loads(listed or "[]"):
            if row["name"] == queue:
                return QueueDepth(int(row["messages_ready"]), int(row["messages_unacknowledged"]))
        return QueueDepth(0, 0)


@contextmanager
def rabbitmq_vhost() -> Iterator[Vhost]:
    """A fresh vhost the test user may use, deleted (with its queues) on the way out."""
    name = f"jbtest-{uuid.uuid4().hex[:12]}"
    base = urlsplit(TEST_RABBITMQ_URL)
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, base.username or "guest", ".*", ".*", ".*")
        yield Vhost(name, f"{base.scheme}://{base.netloc}/{quote(name, safe='')}")
    finally:
        rabbitmqctl("delete_vhost", name)
