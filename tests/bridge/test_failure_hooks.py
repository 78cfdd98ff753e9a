"""A job's `on_failure` hook, per provider: once when a delivery fails for good, never on
an attempt that will be retried, never again on a redelivery of the final attempt.

A test app of its own (the inbox app's registry never sees it): Celery runs its task
eagerly (`apply`, retries included), QStash and direct HTTP post to its routes
in-process, and Inngest's side is its registration. The inbox app's hooks, and the
Inngest failure functions served by the real web server, are in
tests/app/test_failure_hooks_jobs.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

import inngest
import pytest
from celery import Celery
from celery.exceptions import Reject, Retry
from fastapi.testclient import TestClient

from bridge.apps import App
from bridge.celery import tasks as celery_tasks
from bridge.celery.tasks import JobFailed, add_job_task
from bridge.http.wire import ATTEMPT_HEADER, ATTEMPTS, DELIVERY_ID_HEADER
from bridge.inngest.functions import FUNCTION_CANCELLED, job_function, timed_out_function
from bridge.outcome import Delivery, PermanentError, Result, RetryLater, done
from bridge.payload import Payload
from bridge.registry import JobDeclarationError, JobSpec, Registry
from bridge.web.factory import create_app
from config import get_settings
from tests.support import env
from tests.support.fake_qstash import mint_signature

ROUTE = "/api/work/run"
# (work id, error) of every hook call, across the tests: each test reads its own work id.
CALLS: list[tuple[str, str]] = []
# A work id that starts so has a hook that raises.
BROKEN_HOOK = "broken-hook-"


class Work(Payload):
    work_id: str
    outcome: Literal["done", "fail", "retry", "flaky"] = "retry"  # flaky: retry, then done


def _run(payload: Work, delivery: Delivery) -> Result:
    if payload.outcome == "fail":
        raise PermanentError(f"bad work {payload.work_id}")
    if payload.outcome == "retry" or (payload.outcome == "flaky" and delivery.attempt == 0):
        raise RetryLater("busy", 0.01)
    return done()


def _hook(payload: Work, error: str) -> None:
    if payload.work_id.startswith(BROKEN_HOOK):
        raise ConnectionError("the hook's database is away")
    CALLS.append((payload.work_id, error))


registry = Registry(event_prefix="demo/")
WORK = registry.job(event="demo/work.run", route=ROUTE, payload=Work, retries=2, on_failure=_hook)(
    _run
)


def calls_for(work_id: str) -> list[str]:
    return [error for called, error in CALLS if called == work_id]


def new_work(outcome: str) -> dict[str, Any]:
    return {"workId": uuid.uuid4().hex, "outcome": outcome}


# Declaration ----------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["not callable", lambda payload: None])
def test_an_on_failure_that_cannot_take_payload_and_error_is_refused(hook: Any) -> None:
    local = Registry(event_prefix="demo/")
    with pytest.raises(JobDeclarationError, match="on_failure"):
        local.job(event="demo/x.y", route="/api/x/y", payload=Work, on_failure=hook)(_run)


def test_a_job_without_on_failure_has_none() -> None:
    local = Registry(event_prefix="demo/")
    spec = local.job(event="demo/x.y", route="/api/x/y", payload=Work)(_run)
    assert spec.on_failure is None


# Celery ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_work() -> Any:
    app = Celery("failure-hooks-test", set_as_current=False)
    add_job_task(app, WORK)
    return app.tasks[WORK.event]


def test_celery_runs_the_hook_once_when_retries_are_used_up(celery_work: Any) -> None:
    work = new_work("retry")
    result = celery_work.apply(kwargs={"payload": work})
    assert isinstance(result.result, JobFailed)
    assert calls_for(work["workId"]) == ["gave up after 3 attempts: busy"]


def test_celery_does_not_run_the_hook_on_an_attempt_it_retries(celery_work: Any) -> None:
    work = new_work("flaky")  # the first attempt asks to retry, the second succeeds
    assert celery_work.apply(kwargs={"payload": work}).result == "done"
    assert calls_for(work["workId"]) == []


def test_celery_runs_the_hook_on_a_permanent_failure_at_once(celery_work: Any) -> None:
    work = new_work("fail")
    celery_work.apply(kwargs={"payload": work})
    assert calls_for(work["workId"]) == [f"bad work {work['workId']}"]


def test_celery_redelivered_final_attempt_does_not_run_the_hook_again(celery_work: Any) -> None:
    work, task_id = new_work("retry"), uuid.uuid4().hex
    for _ in range(2):  # the same message (task id) on its last attempt, twice
        celery_work.apply(kwargs={"payload": work}, task_id=task_id, retries=WORK.retries)
    assert len(calls_for(work["workId"])) == 1


def test_celery_does_not_run_the_hook_for_a_payload_that_does_not_validate(
    celery_work: Any,
) -> None:
    before = len(CALLS)
    result = celery_work.apply(kwargs={"payload": {"outcome": "fail"}})
    assert isinstance(result.result, JobFailed)
    assert len(CALLS) == before


def test_celery_does_not_run_the_hook_when_the_job_succeeds(celery_work: Any) -> None:
    work = new_work("done")
    assert celery_work.apply(kwargs={"payload": work}).result == "done"
    assert calls_for(work["workId"]) == []


def test_celery_gives_back_a_message_whose_retry_could_not_be_published(
    celery_work: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unpublished(*args: Any, **kwargs: Any) -> None:
        # What Task.retry raises when the broker refuses the retry's message.
        raise Reject(ConnectionError("broker away"), requeue=False)

    monkeypatch.setattr(celery_work, "retry", unpublished)
    monkeypatch.setattr(celery_tasks, "UNPUBLISHED_RETRY_PAUSE_SECONDS", 0)

    result = celery_work.apply(kwargs={"payload": new_work("retry")})

    assert isinstance(result.result, Reject)
    assert result.result.requeue  # type: ignore[attr-defined]  # celery-types leaves it out


Sent = tuple[float, dict[str, str] | None]
REDELIVERED: list[int] = []  # the redeliveries each come-back carried on


@pytest.fixture
def comebacks(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """What _come_back_later was asked to publish: countdown and extra headers."""
    sent: list[Sent] = []
    REDELIVERED.clear()

    def come_back_later(task: Any, countdown: float, *args: Any) -> Retry:
        sent.append((countdown, args[3] if len(args) > 3 else None))
        REDELIVERED.append(args[1])
        return Retry("comes back later", when=countdown)  # type: ignore[arg-type]  # numbers.Real

    monkeypatch.setattr(celery_tasks, "come_back_later", come_back_later)
    return sent


def test_celery_brings_back_later_a_delivery_whose_hook_raised(
    celery_work: Any, comebacks: list[Sent]
) -> None:
    work = {"workId": BROKEN_HOOK + uuid.uuid4().hex, "outcome": "fail"}

    result = celery_work.apply(kwargs={"payload": work})

    assert isinstance(result.result, Retry)
    assert comebacks == [(10.0, {celery_tasks.HOOK_FAILURES_HEADER: "1"})]


def test_celery_backs_off_each_time_the_hook_raises_again(
    celery_work: Any, comebacks: list[Sent]
) -> None:
    work = {"workId": BROKEN_HOOK + uuid.uuid4().hex, "outcome": "fail"}

    celery_work.apply(kwargs={"payload": work}, headers={celery_tasks.HOOK_FAILURES_HEADER: "2"})

    horizon = get_settings().celery_eta_horizon_seconds  # the longest wait Celery is given
    assert comebacks == [(min(160.0, horizon), {celery_tasks.HOOK_FAILURES_HEADER: "3"})]


def test_celery_lets_the_failure_stand_once_the_hook_raised_its_last_time(
    celery_work: Any, comebacks: list[Sent]
) -> None:
    work = {"workId": BROKEN_HOOK + uuid.uuid4().hex, "outcome": "fail"}
    tries = {celery_tasks.HOOK_FAILURES_HEADER: str(celery_tasks.HOOK_TRIES - 1)}

    result = celery_work.apply(kwargs={"payload": work}, headers=tries)

    assert isinstance(result.result, JobFailed)
    assert comebacks == []


# QStash and direct HTTP -----------------------------------------------------------


@pytest.fixture
def web(configure: Callable[..., Any]) -> Iterator[TestClient]:
    settings = configure(**env.QSTASH_ENV)
    app = create_app(settings, App(module=__name__, registry=registry))
    with TestClient(app) as client:
        yield client


def qstash_post(web: TestClient, work: dict[str, Any], message_id: str, retried: int) -> Any:
    raw = json.dumps(work).encode()
    headers = {
        "Content-Type": "application/json",
        "Upstash-Message-Id": message_id,
        "Upstash-Retried": str(retried),
        "Upstash-Signature": mint_signature(raw, env.WEBHOOK_URL + ROUTE),
    }
    return web.post(ROUTE, content=raw, headers=headers)


def http_post(web: TestClient, work: dict[str, Any], delivery_id: str, attempt: int) -> Any:
    headers = {
        "x-api-key": env.INTERNAL_API_KEY,
        DELIVERY_ID_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
    }
    return web.post(ROUTE, json=work, headers=headers)


def test_qstash_retry_before_the_last_attempt_answers_503_without_the_hook(
    web: TestClient,
) -> None:
    work = new_work("retry")
    response = qstash_post(web, work, f"msg_{uuid.uuid4().hex}", retried=WORK.retries - 1)
    assert response.status_code == 503
    assert calls_for(work["workId"]) == []


def test_qstash_retry_on_the_last_attempt_runs_the_hook_once(web: TestClient) -> None:
    work, message_id = new_work("retry"), f"msg_{uuid.uuid4().hex}"
    first = qstash_post(web, work, message_id, retried=WORK.retries)
    again = qstash_post(web, work, message_id, retried=WORK.retries)  # QStash redelivers
    assert first.status_code == 503
    assert again.json()["outcome"] == "duplicate"
    assert calls_for(work["workId"]) == ["busy"]


def test_qstash_permanent_failure_runs_the_hook_once_on_any_attempt(web: TestClient) -> None:
    work, message_id = new_work("fail"), f"msg_{uuid.uuid4().hex}"
    first = qstash_post(web, work, message_id, retried=0)
    again = qstash_post(web, work, message_id, retried=0)
    assert first.status_code == 489
    assert again.json()["outcome"] == "duplicate"
    assert calls_for(work["workId"]) == [f"bad work {work['workId']}"]


def test_qstash_failure_whose_hook_raised_is_answered_503_and_runs_again(
    web: TestClient,
) -> None:
    work = {"workId": BROKEN_HOOK + uuid.uuid4().hex, "outcome": "fail"}
    message_id = f"msg_{uuid.uuid4().hex}"

    first = qstash_post(web, work, message_id, retried=0)
    again = qstash_post(web, work, message_id, retried=1)  # not answered from the ledger

    assert first.status_code == 503
    assert "on_failure hook raised: ConnectionError" in first.json()["error"]
    assert again.status_code == 503


def test_qstash_payload_that_does_not_validate_runs_no_hook(web: TestClient) -> None:
    before = len(CALLS)
    response = qstash_post(web, {"outcome": "fail"}, f"msg_{uuid.uuid4().hex}", retried=0)
    assert response.status_code == 489
    assert len(CALLS) == before


def test_http_retry_before_the_publishers_last_attempt_runs_no_hook(web: TestClient) -> None:
    work = new_work("retry")
    response = http_post(web, work, uuid.uuid4().hex, attempt=ATTEMPTS - 2)
    assert response.status_code == 503
    assert calls_for(work["workId"]) == []


def test_http_retry_on_the_publishers_last_attempt_runs_the_hook_once(web: TestClient) -> None:
    work, delivery_id = new_work("retry"), uuid.uuid4().hex
    first = http_post(web, work, delivery_id, attempt=ATTEMPTS - 1)
    again = http_post(web, work, delivery_id, attempt=ATTEMPTS - 1)
    assert first.status_code == 503
    assert again.json()["outcome"] == "duplicate"
    assert calls_for(work["workId"]) == ["busy"]


# Inngest registration -------------------------------------------------------------


@pytest.fixture
def client() -> inngest.Inngest:
    return inngest.Inngest(app_id="demo", is_production=False)


def test_inngest_registers_the_sdk_failure_function_on_function_failed(
    client: inngest.Inngest,
) -> None:
    config = job_function(client, WORK).get_config("http://app.test/api/inngest")
    assert config.on_failure is not None
    assert config.on_failure.id == "demo-work-run-failure"
    (trigger,) = config.on_failure.triggers
    assert isinstance(trigger, inngest.TriggerEvent)
    assert trigger.event == "inngest/function.failed"
    assert trigger.expression == "event.data.function_id == 'demo-work-run'"


def test_inngest_registers_a_function_for_runs_the_finish_timeout_cancels(
    client: inngest.Inngest,
) -> None:
    main = job_function(client, WORK)
    timed_out = timed_out_function(client, WORK, main)
    assert timed_out is not None
    config = timed_out.get_config("http://app.test/api/inngest").main
    assert config.id == "demo-work-run-timed-out"
    (trigger,) = config.triggers
    assert isinstance(trigger, inngest.TriggerEvent)
    assert trigger.event == FUNCTION_CANCELLED
    assert trigger.expression == "event.data.function_id == 'demo-work-run'"


def test_inngest_registers_no_failure_function_for_a_job_without_a_hook(
    client: inngest.Inngest,
) -> None:
    local = Registry(event_prefix="demo/")
    spec: JobSpec[Work] = local.job(event="demo/x.y", route="/api/x/y", payload=Work)(_run)
    main = job_function(client, spec)
    assert main.get_config("http://app.test/api/inngest").on_failure is None
    assert timed_out_function(client, spec, main) is None


def test_celery_brings_a_delivery_back_with_the_redeliveries_it_had(
    celery_work: Any, comebacks: list[Sent]
) -> None:
    work = {"workId": BROKEN_HOOK + uuid.uuid4().hex, "outcome": "fail"}
    once = {celery_tasks.REDELIVERIES_HEADER: "1"}  # its worker died once, earlier

    celery_work.apply(kwargs={"payload": work}, headers=once)

    assert REDELIVERED == [1]
