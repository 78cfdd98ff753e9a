"""Flower shows the Celery side: workers send no task events until a monitor asks (they
cost every task three publishes), and Flower asks as it starts and every 5 s after."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.publishing import enqueue
from config import Provider
from tasks.scheduled_actions import ExecuteScheduledAction, execute_scheduled_action
from tests.support.services import Process, free_port
from tests.support.wait import wait_for

LOGIN = ("ops", uuid.uuid4().hex)


@pytest.fixture
def flower(worker: Process, log_dir: Path) -> Iterator[str]:
    """Flower on the suite's broker, beside the session's worker."""
    port = free_port()
    command = [sys.executable, "-m", "celery", "-A", "tasks", "flower"]
    command += [f"--port={port}", "--address=127.0.0.1"]
    env = {**os.environ, "FLOWER_BASIC_AUTH": ":".join(LOGIN)}
    process = Process("flower", command, env, log_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(url + "/healthcheck") is not None, timeout=60, what="Flower")
        yield url
    finally:
        process.stop()


def _get(url: str) -> Any:
    try:
        response = httpx.get(url, auth=LOGIN, timeout=10)
    except httpx.TransportError:
        return None
    return (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response.text
    )


def test_flower_shows_a_task_the_worker_ran_after_flower_started(flower: str) -> None:
    published: list[str] = []

    def seen_in_flower() -> bool:
        # Flower's first enable_events may reach the worker only on its next round
        # (every 5 s): a task published before then runs without events, so go on
        # publishing, one a second, until Flower shows one of them as succeeded.
        if len(published) < 1 + int(time.monotonic() - started):
            receipt = enqueue(
                execute_scheduled_action,
                ExecuteScheduledAction(scheduled_action_id=f"flower-{uuid.uuid4().hex[:8]}"),
            )
            assert receipt.provider is Provider.CELERY
            published.append(receipt.id)
        tasks = _get(f"{flower}/api/tasks") or {}
        return any(tasks.get(task_id, {}).get("state") == "SUCCESS" for task_id in published)

    started = time.monotonic()
    wait_for(seen_in_flower, timeout=60, interval=0.2, what="Flower to show a task")
