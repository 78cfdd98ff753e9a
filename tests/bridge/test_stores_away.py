"""A store a route needs (Redis, the database) that is away is a 503 with Retry-After,
which QStash and cron schedulers retry: never a bare 500, and never the store's host in
the answer, nor in the retry detail of a job whose body could not reach a store, nor in
what an Inngest cron or failure function answers Inngest (its run history keeps it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from inngest._internal.net import sign_request
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome, Result
from bridge.payload import Payload
from bridge.registry import JobSpec
from bridge.web.factory import create_app
from tests.support import env
from tests.support.fake_inngest import APP_ID, FakeInngest
from tests.support.fake_qstash import signed_headers
from tests.support.inngest_lifecycle import failed_event
from tests.support.services import free_port

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with

EXECUTE = "/api/scheduled-actions/execute"
SWEEP = "/api/scheduled-actions/sweep"

Configure = Callable[..., Any]


@pytest.fixture
def client(configure: Configure) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(**variables: str | None) -> TestClient:
        settings = configure(**env.QSTASH_ENV, **variables)
        opened.append(TestClient(create_app(settings)))
        return opened[-1]

    yield make
    for made in opened:
        made.close()


def job_of(body: Any) -> JobSpec[Any]:
    """A job of the test's own, run through the core with `run_job`."""
    return JobSpec(
        event="inbox-zero/test.store-away",
        name="test.store-away",
        route="/api/test",
        payload=Payload,
        body=body,
    )


def closed_port() -> int:
    return free_port()  # free: nothing listens there


def signed_delivery(web: TestClient, body: bytes) -> Any:
    return web.post(EXECUTE, content=body, headers=signed_headers(body, EXECUTE))


def inngest_call(web: TestClient, fn_id: str, event: dict[str, Any]) -> Response:
    raw = json.dumps(FakeInngest.request_body(event, "01RUNSTOREAWAY", 0, {}, [])).encode()
    signature = str(sign_request(raw, env.INNGEST_SIGNING_KEY))
    return web.post(
        "/api/inngest",
        params={"fnId": f"{APP_ID}-{fn_id}", "stepId": "step"},
        content=raw,
        headers={"Content-Type": "application/json", "X-Inngest-Signature": signature},
    )


def test_a_delivery_while_redis_is_away_is_asked_to_come_back(
    client: Callable[..., TestClient],
) -> None:
    port = closed_port()
    web = client(REDIS_URL=f"redis://127.0.0.1:{port}/0")

    response = signed_delivery(web, json.dumps({"scheduledActionId": "a"}).encode())

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert str(port) not in response.text
    assert "delivery ledger is unavailable" in response.json()["error"]


def test_a_cron_call_while_the_database_is_away_is_asked_to_come_back(
    client: Callable[..., TestClient],
) -> None:
    port = closed_port()
    web = client(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/away")

    response = web.post(SWEEP, headers={"Authorization": f"Bearer {env.CRON_SECRET}"})

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert str(port) not in response.text


def test_a_cron_call_while_the_database_is_away_is_logged_in_one_line(
    client: Callable[..., TestClient],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOBBRIDGE_DEBUG", raising=False)
    web = client(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port()}/away")

    web.post(SWEEP, headers={"Authorization": f"Bearer {env.CRON_SECRET}"})

    (record,) = [r for r in caplog.records if "a store is away" in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "\n" not in record.getMessage()


def test_a_job_that_finds_the_database_away_is_retried_without_naming_its_host(
    client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    web = client(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/away")

    response = signed_delivery(web, json.dumps({"scheduledActionId": "a"}).encode())

    assert response.status_code >= 500  # QStash retries it
    assert "OperationalError" in response.text
    assert str(port) not in response.text
    assert str(port) in caplog.text  # the log keeps the whole error


def unreachable(payload: Payload, delivery: Delivery) -> Result:
    raise RedisConnectionError("Error 111 connecting to 10.1.2.3:6380. Connection refused.")


def test_a_store_away_is_logged_in_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBBRIDGE_DEBUG", raising=False)

    run_job(job_of(unreachable), {}, Delivery("http", "d1", 0))

    (record,) = [r for r in caplog.records if r.name == "jobbridge.core"]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "ConnectionError: Error 111 connecting to 10.1.2.3:6380" in record.getMessage()


def test_a_store_away_is_logged_with_its_traceback_when_debugging(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBBRIDGE_DEBUG", "1")

    run_job(job_of(unreachable), {}, Delivery("http", "d1", 0))

    (record,) = [r for r in caplog.records if r.name == "jobbridge.core"]
    assert record.exc_info is not None


def test_an_unexpected_error_in_a_job_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBBRIDGE_DEBUG", raising=False)

    def broken(payload: Payload, delivery: Delivery) -> Result:
        raise KeyError("a bug")

    run_job(job_of(broken), {}, Delivery("http", "d1", 0))

    (record,) = [r for r in caplog.records if r.name == "jobbridge.core"]
    assert record.levelname == "ERROR" and record.exc_info is not None


def test_a_database_the_job_could_not_reach_is_told_to_the_provider_by_kind_only() -> None:
    def body(payload: Payload, delivery: Delivery) -> Result:
        raise OperationalError(
            None,
            None,
            psycopg.OperationalError(
                'connection to server at "10.1.2.3", port 6543 failed: Connection refused'
            ),
        )

    result = run_job(job_of(body), {}, Delivery("http", "d1", 0))

    assert result.outcome is Outcome.RETRY
    assert result.detail.startswith("OperationalError: ")
    assert "10.1.2.3" not in result.detail and "6543" not in result.detail


def test_a_redis_the_job_could_not_reach_is_told_to_the_provider_by_kind_only() -> None:
    def body(payload: Payload, delivery: Delivery) -> Result:
        raise RedisConnectionError("Error 111 connecting to 10.1.2.3:6380. Connection refused.")

    result = run_job(job_of(body), {}, Delivery("http", "d1", 0))

    assert result.outcome is Outcome.RETRY
    assert result.detail.startswith("ConnectionError: ")
    assert "10.1.2.3" not in result.detail


def test_an_inngest_cron_that_finds_the_database_away_is_retried_without_naming_its_host(
    client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    web = client(**env.INNGEST_ENV, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/away")
    tick = {"name": "inngest/scheduled.timer", "data": {"cron": "* * * * *"}}

    response = inngest_call(web, "scheduled-actions-sweep", tick)

    assert response.status_code == 500
    assert response.headers.get("x-inngest-no-retry") != "true"
    assert "OperationalError: could not reach the database" in response.text
    assert str(port) not in response.text
    assert str(port) in caplog.text  # the log keeps the whole error


def test_an_inngest_failure_function_that_finds_the_database_away_does_not_name_its_host(
    client: Callable[..., TestClient],
) -> None:
    port = closed_port()
    web = client(**env.INNGEST_ENV, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/away")
    original = {"name": "inbox-zero/scheduled-action.execute", "data": {"scheduledActionId": "a"}}
    failed = failed_event("scheduled-action-execute", original, "boom")

    response = inngest_call(web, "scheduled-action-execute-failure", failed)

    assert response.status_code == 500
    assert "OperationalError: could not reach the database" in response.text
    assert str(port) not in response.text
