"""A worker whose METRICS_PORT is taken runs on without its metrics, and says so in one
line naming the variable (no traceback)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.signals import worker_init

from bridge.celery.app import celery_app
from bridge.registry import Registry
from tests.support.services import taken_port


class Worker:
    """What a worker_init receiver reads of its sender: the worker's app."""

    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.fixture(name="taken_port")
def a_taken_port() -> Iterator[int]:
    with taken_port() as port:
        yield port


def test_a_taken_metrics_port_is_named_in_one_error_line(
    configure: Callable[..., Any], taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    configure(METRICS_PORT=str(taken_port), METRICS_ADDR="127.0.0.1")
    app = celery_app(Registry(event_prefix="metrics-port-test/"))
    try:
        worker_init.send(sender=Worker(app))
    finally:
        gc.unfreeze()  # the worker's start also freezes the heap

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert f"METRICS_PORT {taken_port} on 127.0.0.1 cannot be used" in errors[0].getMessage()
