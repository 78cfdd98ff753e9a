"""Remote control on the embedded broker: Flower's Workers page and `celery inspect` wait
1 s for replies, so a worker must answer inside that window every time, not only when
its next look at the broker folders happens to come soon enough."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from bridge.celery.config import celery_config
from config import load_settings
from tests.ops.test_dev_stack import embedded_env
from tests.support.services import Process, start_worker

PINGS = 5


@pytest.fixture
def embedded_worker(tmp_path: Path, log_dir: Path) -> Iterator[Path]:
    env = {**embedded_env(), "DATA_DIR": str(tmp_path)}
    worker: Process = start_worker(env, log_dir, name="embedded-worker", concurrency=1)
    try:
        yield tmp_path
    finally:
        worker.stop()


def test_a_worker_on_the_embedded_broker_answers_every_ping_within_one_second(
    embedded_worker: Path,
) -> None:
    settings = load_settings(redis_url=None, data_dir=embedded_worker)
    control = Celery("embedded-remote-control", config_source=celery_config(settings))
    answered = [bool(control.control.ping(timeout=1.0)) for _ in range(PINGS)]
    assert answered == [True] * PINGS
