"""A job's `answer_early`: awaited on the event loop before any thread runs the job. A
done or skipped answer settles the delivery there; anything else it says or raises
leaves the delivery to the body, which decides with all it has."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inngest._internal.net import sign_request
from pydantic import Field
from sqlalchemy import literal, select
from sqlalchemy.exc import OperationalError

from bridge.core import early_result
from bridge.outcome import Delivery, Outcome, Result, RetryLater
from bridge.payload import Payload
from bridge.registry import JobDeclarationError, JobSpec, Registry
from bridge.store import loop_reads
from bridge.store.db import session_scope
from bridge.web import deliveries
from bridge.web.factory import create_app
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tasks.scheduled_actions import execute_scheduled_action
from tests.conftest import Mailbox
from tests.support import env
from tests.support.actions import insert_action
from tests.support.fake_inngest import APP_ID, FakeInngest
from tests.support.fake_qstash import signed_headers
from tests.support.loop_connections import connections_opened
from tests.support.services import free_port

DELIVERY = Delivery("qstash", "msg_early", 0)


class Ask(Payload):
    answer: str = Field(min_length=1)


def job_answering(early: Any) -> JobSpec[Ask]:
    def body(payload: Ask, delivery: Delivery) -> Result:
        return Result(Outcome.DONE, "from the body")

    return JobSpec(
        event="inbox-zero/test.early",
        name="test.early",
        route="/api/test",
        payload=Ask,
        body=body,
        answer_early=early,
    )


def early(spec: JobSpec[Any], data: dict[str, Any]) -> Result | None:
    async def ask() -> Result | None:
        try:
            return await early_result(spec, data, DELIVERY)
        finally:
            await loop_reads.close_loop_pool()

    return asyncio.run(ask())


async def say(payload: Ask) -> Result | None:
    if payload.answer == "retry":
        raise RetryLater("not yet", 60.0)
    if payload.answer == "none":
        return None
    return Result(Outcome(payload.answer), "early")


def test_a_done_or_skipped_early_answer_settles_the_delivery() -> None:
    spec = job_answering(say)

    assert early(spec, {"answer": "skipped"}) == Result(Outcome.SKIPPED, "early")
    assert early(spec, {"answer": "done"}) == Result(Outcome.DONE, "early")


@pytest.mark.parametrize("answer", ["none", "failed", "retry", ""])
def test_anything_else_leaves_the_delivery_to_the_body(answer: str) -> None:
    # None, a failure, a raised retry, a payload that does not validate ("" is too short)
    assert early(job_answering(say), {"answer": answer}) is None


def test_a_job_without_an_early_answer_has_none() -> None:
    assert early(job_answering(None), {"answer": "done"}) is None


def test_an_early_answer_must_be_an_async_function() -> None:
    def sync_answer(payload: Ask) -> Result | None:
        return None

    with pytest.raises(JobDeclarationError, match="answer_early must be an async function"):
        Registry(event_prefix="inbox-zero/").job(
            event="inbox-zero/test.sync-early",
            route="/api/test/sync-early",
            payload=Ask,
            answer_early=sync_answer,  # type: ignore[arg-type]
        )(job_answering(None).body)


def execute_early(action_id: str) -> Result | None:
    return early(execute_scheduled_action, {"scheduledActionId": action_id})


def test_execute_answers_a_missing_or_finished_action_early(mailbox: Mailbox) -> None:
    done = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    with session_scope() as session:
        session.get_one(ScheduledAction, done.id).status = ActionStatus.COMPLETED

    assert execute_early("no-such-action") == Result(Outcome.SKIPPED, "no such scheduled action")
    assert execute_early(done.id) == Result(Outcome.SKIPPED, "action is COMPLETED")


def test_execute_leaves_a_due_or_early_action_to_its_body(mailbox: Mailbox) -> None:
    due = insert_action(
        mailbox.account_id,
        ActionType.ARCHIVE,
        mailbox.keys[0],
        scheduled_for=utcnow() - timedelta(seconds=1),
    )
    ahead = insert_action(
        mailbox.account_id,
        ActionType.ARCHIVE,
        mailbox.keys[1],
        scheduled_for=utcnow() + timedelta(hours=1),
    )

    assert execute_early(due.id) is None
    assert execute_early(ahead.id) is None  # the body answers "retry later"


def test_a_database_not_read_from_the_loop_leaves_the_delivery_to_the_body(
    configure: Callable[..., Any], tmp_path: Any
) -> None:
    configure(DATABASE_URL=None, DATA_DIR=str(tmp_path))  # the embedded SQLite default
    statement = select(literal(1).label("one"))

    with pytest.raises(loop_reads.NotReadableOnLoop):
        asyncio.run(loop_reads.read_one_on_loop(statement, {}))
    assert execute_early("no-such-action") is None


@pytest.fixture
def web(configure: Callable[..., Any]) -> Iterator[TestClient]:
    settings = configure(**env.QSTASH_ENV, **env.INNGEST_ENV)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(function: Any) -> Any:
        raise AssertionError("a delivery thread was used")

    monkeypatch.setattr(deliveries, "in_delivery_thread", refuse)
    monkeypatch.setattr("bridge.inngest.functions.in_delivery_thread", refuse)


def test_a_qstash_delivery_of_a_missing_action_needs_no_thread(
    web: TestClient, no_threads: None
) -> None:
    route = execute_scheduled_action.route
    body = json.dumps({"scheduledActionId": "no-such-action"}).encode()

    answer = web.post(route, content=body, headers=signed_headers(body, route))

    assert answer.status_code == 200
    assert answer.json() == {"outcome": "skipped", "detail": "no such scheduled action"}


def test_an_inngest_call_for_a_missing_action_needs_no_thread(
    web: TestClient, no_threads: None
) -> None:
    event = {"name": execute_scheduled_action.event, "data": {"scheduledActionId": "nowhere"}}
    body = FakeInngest.request_body(event, f"01RUN{uuid.uuid4().hex[:20]}", 0, {}, [])
    raw = json.dumps(body).encode()
    signature = str(sign_request(raw, env.INNGEST_SIGNING_KEY))

    answer = web.post(
        "/api/inngest",
        params={"fnId": f"{APP_ID}-{execute_scheduled_action.fn_id}", "stepId": "step"},
        content=raw,
        headers={"Content-Type": "application/json", "X-Inngest-Signature": signature},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "skipped"


def test_the_web_app_closes_its_loop_connections_when_it_stops(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = connections_opened(monkeypatch)
    body = json.dumps({"scheduledActionId": "no-such-action"}).encode()
    route = execute_scheduled_action.route
    with TestClient(create_app(configure(**env.QSTASH_ENV))) as client:
        client.post(route, content=body, headers=signed_headers(body, route))
        open_while_serving = [c for c in opened if not c.is_closed()]

    assert len(open_while_serving) == 1
    assert all(connection.is_closed() for connection in opened)


def test_after_a_failed_loop_read_the_loop_rests_and_says_so_once(
    configure: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    configure(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/away")
    statement = select(literal(1).label("one"))

    async def twice() -> tuple[BaseException, BaseException]:
        try:
            first = await capture(loop_reads.read_one_on_loop(statement, {}))
            second = await capture(loop_reads.read_one_on_loop(statement, {}))
        finally:
            await loop_reads.close_loop_pool()
        return first, second

    first, second = asyncio.run(twice())

    assert isinstance(first, OperationalError)
    assert isinstance(second, loop_reads.NotReadableOnLoop)  # at once: resting
    assert caplog.text.count("reads from the event loop rest") == 1


async def capture(reading: Any) -> BaseException:
    try:
        await reading
    except Exception as error:
        return error
    raise AssertionError("the read did not fail")
