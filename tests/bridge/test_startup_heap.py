"""The web app and the Celery worker freeze the heap they build at start, so that the
cyclic collector never walks it again while they serve (bridge/heap.py)."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import worker_init

from bridge.celery.app import celery_app
from bridge.registry import Registry


class Worker:
    """What a worker_init receiver reads of its sender: the worker's app."""

    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_web_app_uvicorn_loads_has_its_startup_heap_frozen() -> None:
    probe = "import gc, bridge.web; bridge.web.app; print(gc.get_freeze_count())"

    command = [sys.executable, "-c", probe]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10_000  # the modules, the app and its routes


def test_a_worker_of_the_app_freezes_the_heap_before_its_pool_forks(unfrozen: None) -> None:
    app = celery_app(Registry(event_prefix="heap-test/"))

    worker_init.send(sender=Worker(app))

    assert gc.get_freeze_count() > 10_000


def test_a_worker_of_another_app_leaves_the_heap_alone(unfrozen: None) -> None:
    celery_app(Registry(event_prefix="heap-test/"))

    worker_init.send(sender=Worker(object()))

    assert gc.get_freeze_count() == 0


def test_the_orms_mappers_are_configured_with_the_startup_heap() -> None:
    probe = (
        "import bridge.web; from tasks.models import "
        "ScheduledAction; print(ScheduledAction.__mapper__.configured); bridge.web.app; "
        "print(ScheduledAction.__mapper__.configured)"
    )

    command = [sys.executable, "-c", probe]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]  # configured at start, before a query


def test_a_model_that_cannot_be_configured_is_named_as_the_web_apps_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bridge.web

    def broken_model() -> None:
        raise AttributeError("type object 'B' has no attribute 'a_idd'")

    monkeypatch.setattr(bridge.web, "freeze_startup_heap", broken_model)
    bridge.web._asgi_app.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"building the web app failed: .*a_idd"):
            bridge.web.app  # noqa: B018  # uvicorn's read of the attribute
    finally:
        bridge.web._asgi_app.cache_clear()
