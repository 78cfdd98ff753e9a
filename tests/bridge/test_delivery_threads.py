"""A web process's delivery threads: a few deliveries start at a time, in arrival order;
one that has run past the settle time stops counting, so slow jobs still run side by
side; every job route and Inngest function runs its work there."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import inngest
import pytest
from fastapi.testclient import TestClient

from bridge.apps import App
from bridge.inngest.functions import all_functions
from bridge.outcome import Delivery, Result, done
from bridge.payload import Payload
from bridge.registry import Registry
from bridge.threads import DeliveryThreads, in_delivery_thread
from bridge.web.factory import create_app
from tasks import registry as inbox_registry
from tests.support import env
from tests.support.wait import wait_for

DEADLINE = 10.0
LONG = 60.0  # a settle time no test reaches


class Started:
    """Functions that record their start and wait for the test to let them finish."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def task(self, number: int) -> Callable[[], int]:
        def run() -> int:
            with self._lock:
                self.order.append(number)
            assert self.release.wait(DEADLINE)
            return number

        return run

    def count(self) -> int:
        with self._lock:
            return len(self.order)


@pytest.fixture
def started() -> Iterator[Started]:
    recorder = Started()
    yield recorder
    recorder.release.set()


def pool(at_once: int, settle_seconds: float = LONG, most: int = 8) -> DeliveryThreads:
    return DeliveryThreads(at_once=at_once, most=most, settle_seconds=settle_seconds, name="t")


def test_a_delivery_returns_its_result_and_raises_its_error() -> None:
    threads = pool(at_once=2)

    def fail() -> None:
        raise ValueError("bad")

    assert threads.submit(sum, [1, 2]).result(DEADLINE) == 3
    with pytest.raises(ValueError, match="bad"):
        threads.submit(fail).result(DEADLINE)
    threads.shutdown()


def test_only_at_once_deliveries_start_and_the_next_starts_when_one_ends(
    started: Started,
) -> None:
    threads = pool(at_once=2)
    futures = [threads.submit(started.task(number)) for number in range(5)]

    wait_for(lambda: started.count() == 2, timeout=DEADLINE)
    assert not any(future.done() for future in futures)
    assert started.count() == 2  # the other three wait, though threads are free
    started.release.set()

    assert [future.result(DEADLINE) for future in futures] == [0, 1, 2, 3, 4]
    threads.shutdown()


def test_deliveries_start_in_the_order_they_arrived(started: Started) -> None:
    threads = pool(at_once=1)
    futures = [threads.submit(started.task(number)) for number in range(6)]
    started.release.set()

    for future in futures:
        future.result(DEADLINE)
    assert started.order == [0, 1, 2, 3, 4, 5]
    threads.shutdown()


def test_a_delivery_running_past_the_settle_time_lets_the_next_one_start(
    started: Started,
) -> None:
    threads = pool(at_once=1, settle_seconds=0.05)
    slow = threads.submit(started.task(0))
    wait_for(lambda: started.count() == 1, timeout=DEADLINE)

    threads.submit(started.task(1))

    wait_for(lambda: started.count() == 2, timeout=DEADLINE)
    assert not slow.done()  # both run side by side
    threads.shutdown(wait=False)


def test_no_more_than_most_deliveries_run_at_once_even_when_all_have_settled(
    started: Started,
) -> None:
    threads = pool(at_once=1, settle_seconds=0.01, most=3)
    futures = [threads.submit(started.task(number)) for number in range(5)]

    wait_for(lambda: started.count() == 3, timeout=DEADLINE)
    with pytest.raises(TimeoutError):
        futures[3].result(timeout=0.2)  # no fourth thread
    assert started.count() == 3
    started.release.set()
    assert [future.result(DEADLINE) for future in futures] == [0, 1, 2, 3, 4]
    threads.shutdown()


def test_a_delivery_cancelled_before_its_turn_never_runs(started: Started) -> None:
    threads = pool(at_once=1)
    first = threads.submit(started.task(0))
    second: Future[int] = threads.submit(started.task(1))
    wait_for(lambda: started.count() == 1, timeout=DEADLINE)

    assert second.cancel()
    started.release.set()

    assert first.result(DEADLINE) == 0
    threads.shutdown()
    assert started.order == [0]


def test_shutdown_finishes_what_was_submitted_and_refuses_more(started: Started) -> None:
    threads = pool(at_once=1)
    futures = [threads.submit(started.task(number)) for number in range(3)]
    started.release.set()

    threads.shutdown()

    assert all(future.done() for future in futures)
    with pytest.raises(RuntimeError, match="after shutdown"):
        threads.submit(int)


def test_a_job_that_exits_fails_its_delivery_instead_of_the_process() -> None:
    threads = pool(at_once=1)

    with pytest.raises(RuntimeError, match="SystemExit"):
        threads.submit(sys.exit, 3).result(DEADLINE)
    assert threads.submit(int, "7").result(DEADLINE) == 7
    threads.shutdown()


def test_a_thread_lost_to_a_failing_callback_is_replaced(
    started: Started, monkeypatch: pytest.MonkeyPatch
) -> None:
    died: list[type[BaseException] | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda hooked: died.append(hooked.exc_type))
    threads = pool(at_once=1, most=1)
    first = threads.submit(started.task(0))
    first.add_done_callback(lambda _: sys.exit())  # kills the thread that completes it
    second = threads.submit(started.task(1))
    started.release.set()

    assert second.result(DEADLINE) == 1
    wait_for(lambda: died, timeout=DEADLINE)
    assert died == [SystemExit]
    threads.shutdown()


def test_a_delivery_cannot_wait_for_its_own_threads_to_shut_down() -> None:
    threads = pool(at_once=1)

    def shut_down_from_inside() -> None:
        threads.shutdown(wait=True)

    with pytest.raises(RuntimeError, match="cannot wait"):
        threads.submit(shut_down_from_inside).result(DEADLINE)


def test_at_once_must_be_between_one_and_the_most_and_settling_take_time() -> None:
    with pytest.raises(ValueError, match="at_once"):
        pool(at_once=0)
    with pytest.raises(ValueError, match="at_once"):
        pool(at_once=9, most=8)
    with pytest.raises(ValueError, match="settle_seconds"):
        pool(at_once=1, settle_seconds=0)


def test_a_delivery_thread_sees_the_callers_context_variables() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    async def caller() -> str:
        request_id.set("req-1")
        return await in_delivery_thread(request_id.get)

    assert asyncio.run(caller()) == "req-1"


# Where the app runs its jobs ---------------------------------------------------------------


class Nothing(Payload):
    pass


THREADS: list[str] = []
registry = Registry(event_prefix="demo/")


@registry.job(event="demo/where.run", route="/api/where/run", payload=Nothing)
def _record_thread(payload: Nothing, delivery: Delivery) -> Result:
    THREADS.append(threading.current_thread().name)
    return done()


def test_a_job_route_runs_its_job_in_a_delivery_thread(configure: Callable[..., Any]) -> None:
    settings = configure(INTERNAL_API_KEY=env.INTERNAL_API_KEY)
    app = create_app(settings, App(module=__name__, registry=registry))
    with TestClient(app) as client:
        response = client.post(
            "/api/where/run", json={}, headers={"x-api-key": env.INTERNAL_API_KEY}
        )

    assert response.json()["outcome"] == "done"
    assert THREADS[-1].startswith("jobbridge-delivery")


def test_every_inngest_function_is_async_so_the_sdk_runs_none_in_its_own_threads() -> None:
    client = inngest.Inngest(app_id="inbox-zero", is_production=False)

    functions = all_functions(client, inbox_registry)

    assert functions
    assert all(function.is_handler_async for function in functions)
    assert all(function.is_on_failure_handler_async in (None, True) for function in functions)
