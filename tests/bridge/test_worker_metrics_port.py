"""A Celery worker's own metrics endpoint (METRICS_PORT) has no token, so it listens on
loopback unless METRICS_ADDR says otherwise; a worker whose METRICS_PORT is taken runs on
without it, and says so in one line naming the variable (no traceback)."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.signals import worker_init

from bridge.celery.app import celery_app
from bridge.registry import Registry
from tests.support.services import free_port, start_worker, taken_port
from tests.support.wait import wait_for


def _listening_on(port: int) -> set[str]:
    """The IPv4 addresses with a socket listening on `port`, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def _worker_serving(tmp_path: Path, log_dir: Path, **variables: str) -> tuple[int, set[str]]:
    port = free_port()
    env = {
        **os.environ,
        "METRICS_PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **variables,
    }
    worker = start_worker(env, log_dir, name="metrics-worker", concurrency=1)
    try:
        answer = wait_for(lambda: _scrape(port), timeout=30, what="the worker's metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        return port, _listening_on(port)
    finally:
        worker.stop()


def _scrape(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.TransportError:
        return None


def test_the_workers_metrics_listen_on_loopback_by_default(
    tmp_path: Path, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("METRICS_ADDR", raising=False)
    _, addresses = _worker_serving(tmp_path, log_dir)
    assert addresses == {"127.0.0.1"}


def test_metrics_addr_opens_the_workers_metrics_to_other_hosts(
    tmp_path: Path, log_dir: Path
) -> None:
    _, addresses = _worker_serving(tmp_path, log_dir, METRICS_ADDR="0.0.0.0")
    assert addresses == {"0.0.0.0"}


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
