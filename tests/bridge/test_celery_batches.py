"""Celery batches: a job with a `batch_body` takes the payloads of one key value,
published together, as one message; each payload keeps its own outcome.

A test app of its own: Celery runs the batch task eagerly (`apply`), and what the task
would publish (a payload sent back alone) is recorded instead of sent. The publisher's
grouping is checked against the real broker, and the inbox app's batches (bulk workers)
in tests/app/test_bulk_batches.py.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pytest
from celery import Celery
from celery.exceptions import Reject
from sqlalchemy.exc import DataError

from bridge.celery import batches as celery_batches
from bridge.celery.batches import BATCH_MAX, add_batch_task, batch_task_name
from bridge.celery.publisher import CeleryPublisher
from bridge.celery.tasks import HOOK_FAILURES_HEADER, REDELIVERIES_HEADER, add_job_task
from bridge.core import run_batch
from bridge.outcome import Delivery, Outcome, Result, RetryLater, done, skipped
from bridge.payload import Payload
from bridge.publishing import prepare
from bridge.receipt import Receipt
from bridge.registry import JobDeclarationError, Registry
from config import Provider, get_settings

# (item id, error) of every hook call; each test reads its own item ids.
HOOKED: list[tuple[str, str]] = []
BROKEN_HOOK = "broken-hook-"


class Item(Payload):
    owner_id: str
    item_id: str
    outcome: Literal["done", "skip", "fail", "retry", "explode"] = "done"


def _one(payload: Item) -> Result:
    if payload.outcome == "skip":
        return skipped("nothing to do")
    if payload.outcome == "fail":
        return Result(Outcome.FAILED, f"bad item {payload.item_id}")
    if payload.outcome == "retry":
        return Result(Outcome.RETRY, "busy", 30.0)
    if payload.outcome == "explode":
        raise ConnectionError("the store is away")
    return done()


def _batch(payloads: Sequence[Item], delivery: Delivery) -> list[Result]:
    return [_one(payload) for payload in payloads]


def _body(payload: Item, delivery: Delivery) -> Result:
    return _batch([payload], delivery)[0]


def _hook(payload: Item, error: str) -> None:
    if payload.item_id.startswith(BROKEN_HOOK):
        raise ConnectionError("the hook's database is away")
    HOOKED.append((payload.item_id, error))


registry = Registry(event_prefix="demo/")
ITEMS = registry.job(
    event="demo/items.run",
    route="/api/items/run",
    payload=Item,
    key="ownerId",
    concurrency=2,
    retries=2,
    on_failure=_hook,
    batch_body=_batch,
)(_body)


ONCE = registry.job(
    event="demo/items.once",
    route="/api/items/once",
    payload=Item,
    key="ownerId",
    retries=0,
    on_failure=_hook,
    batch_body=_batch,
)(_body)


def items(*outcomes: str, owner: str = "owner-1") -> list[dict[str, Any]]:
    return [
        {"ownerId": owner, "itemId": uuid.uuid4().hex, "outcome": outcome} for outcome in outcomes
    ]


def hooked(payloads: list[dict[str, Any]]) -> list[str]:
    ids = {payload["itemId"] for payload in payloads}
    return [error for item_id, error in HOOKED if item_id in ids]


Sent = dict[str, Any]


@pytest.fixture
def app() -> Celery:
    app = Celery("batches-test", set_as_current=False)
    for spec in (ITEMS, ONCE):
        add_job_task(app, spec)
        add_batch_task(app, spec)
    return app


@pytest.fixture
def batch_task(app: Celery) -> Any:
    return app.tasks[batch_task_name(ITEMS)]


@pytest.fixture
def sent(app: Celery, monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """What the batch tasks published: each call's task name and options."""
    published: list[Sent] = []

    def send_task(name: str, **options: Any) -> None:
        published.append({"name": name, **options})

    monkeypatch.setattr(app, "send_task", send_task)
    return published


def alone(payload: dict[str, Any], task_id: str, countdown: float, retries: int = 1) -> Sent:
    """A payload published alone as an ordinary message of ITEMS, from a first batch."""
    return {
        "name": ITEMS.event,
        "kwargs": {"payload": payload},
        "task_id": task_id,
        "countdown": countdown,
        "retries": retries,
        "headers": {REDELIVERIES_HEADER: "0"},
    }


# Declaration ----------------------------------------------------------------------


def test_a_batch_body_needs_the_key_field_it_groups_by() -> None:
    local = Registry(event_prefix="demo/")
    with pytest.raises(JobDeclarationError, match="batch_body needs a payload field 'accountId'"):
        local.job(
            event="demo/x.y", route="/api/x/y", payload=Item, key="accountId", batch_body=_batch
        )(_body)


def test_a_job_without_a_batch_body_has_no_batch_task() -> None:
    local = Registry(event_prefix="demo/")
    spec = local.job(event="demo/x.y", route="/api/x/y", payload=Item, key="ownerId")(_body)
    app = Celery("no-batches", set_as_current=False)
    add_batch_task(app, spec)
    assert batch_task_name(spec) not in app.tasks


# Outcomes -------------------------------------------------------------------------


def test_a_batch_answers_how_many_payloads_had_each_outcome_and_detail(
    batch_task: Any, sent: list[Sent]
) -> None:
    result = batch_task.apply(kwargs={"payloads": items("done", "skip", "done")})
    assert result.result == {"done": {"": 2}, "skipped": {"nothing to do": 1}}
    assert sent == []


def test_a_payload_to_retry_is_published_alone_as_its_next_attempt(
    batch_task: Any, sent: list[Sent]
) -> None:
    payloads = items("done", "retry")
    batch_task.apply(kwargs={"payloads": payloads}, task_id="batch-a")

    assert sent == [alone(payloads[1], "batch-a.1", 30.0)]
    assert hooked(payloads) == []


def test_a_payload_sent_back_alone_keeps_the_id_it_was_published_with(
    batch_task: Any, sent: list[Sent]
) -> None:
    payloads = items("retry", "retry")
    batch_task.apply(kwargs={"payloads": payloads, "ids": ["first", None]}, task_id="b")

    assert [one["task_id"] for one in sent] == ["first", "b.1"]


def test_a_payload_of_a_job_without_retries_fails_alone_and_runs_its_hook(
    app: Celery, sent: list[Sent]
) -> None:
    payloads = items("retry", "done")

    result = app.tasks[batch_task_name(ONCE)].apply(kwargs={"payloads": payloads})

    assert result.result == {"retry": {"busy": 1}, "done": {"": 1}}
    assert sent == []
    assert hooked(payloads) == ["gave up after 1 attempts: busy"]


def test_a_batch_back_more_often_than_the_jobs_retries_is_split_each_alone_unrun(
    batch_task: Any, sent: list[Sent]
) -> None:
    payloads = items("done", "fail")
    back = {REDELIVERIES_HEADER: str(ITEMS.retries + 1)}

    result = batch_task.apply(kwargs={"payloads": payloads}, headers=back, task_id="c")

    assert list(result.result) == ["split"]
    assert [(one["task_id"], one["retries"]) for one in sent] == [("c.0", 0), ("c.1", 0)]
    assert hooked(payloads) == []  # the failing one was not run


def test_a_permanent_failure_runs_the_hook_for_its_payload_only(
    batch_task: Any, sent: list[Sent]
) -> None:
    payloads = items("done", "fail", "done")
    batch_task.apply(kwargs={"payloads": payloads})
    assert hooked(payloads) == [f"bad item {payloads[1]['itemId']}"]
    assert sent == []


def test_a_payload_that_does_not_validate_fails_alone_naming_its_field(
    batch_task: Any, sent: list[Sent]
) -> None:
    payloads = [*items("done"), {"ownerId": "owner-1", "outcome": "done"}]
    result = batch_task.apply(kwargs={"payloads": payloads})
    assert result.result == {
        "done": {"": 1},
        "failed": {"invalid payload: itemId: Field required": 1},
    }


def test_a_batch_body_that_raises_sends_every_payload_back_alone(
    batch_task: Any, sent: list[Sent]
) -> None:
    payloads = items("done", "explode", "done")
    batch_task.apply(kwargs={"payloads": payloads}, task_id="batch-b")

    first_retry = 10.0  # bridge.core.backoff_seconds(0): the body's error is transient
    assert sent == [
        alone(payload, f"batch-b.{i}", first_retry) for i, payload in enumerate(payloads)
    ]


def test_a_failure_whose_hook_raised_is_sent_back_alone_to_fail_and_hook_again(
    batch_task: Any, sent: list[Sent]
) -> None:
    broken = {"ownerId": "owner-1", "itemId": BROKEN_HOOK + uuid.uuid4().hex, "outcome": "fail"}
    batch_task.apply(kwargs={"payloads": [*items("done"), broken]}, task_id="batch-c")

    back = alone(broken, "batch-c.1", 10.0, retries=0)
    assert sent == [{**back, "headers": {REDELIVERIES_HEADER: "0", HOOK_FAILURES_HEADER: "1"}}]


def test_a_batch_whose_payloads_cannot_be_sent_back_is_given_back_whole(
    batch_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(name: str, **options: Any) -> None:
        raise ConnectionError("broker away")

    monkeypatch.setattr(batch_task.app, "send_task", refused)
    monkeypatch.setattr(celery_batches, "UNPUBLISHED_RETRY_PAUSE_SECONDS", 0)

    result = batch_task.apply(kwargs={"payloads": items("done", "retry")})

    assert isinstance(result.result, Reject)
    assert result.result.requeue  # type: ignore[attr-defined]  # celery-types leaves it out


# Publishing -----------------------------------------------------------------------


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CeleryPublisher, list[Sent]]]:
    """A Celery publisher on the suite's broker that records what it sends."""
    publisher = CeleryPublisher(get_settings())
    recorded: list[Sent] = []
    app = publisher._app

    def send_task(name: str, **options: Any) -> None:
        recorded.append({"name": name, **options})

    monkeypatch.setattr(app, "send_task", send_task)
    yield publisher, recorded


def test_payloads_of_one_key_are_published_as_batches_of_at_most_batch_max(
    published: tuple[CeleryPublisher, list[Sent]],
) -> None:
    publisher, recorded = published
    payloads = items(*["done"] * (BATCH_MAX + 3))
    messages = [
        prepare(ITEMS, Item.model_validate(p), dedup_id=f"d{i}") for i, p in enumerate(payloads)
    ]

    receipts = publisher.publish(messages)

    assert [(one["name"], len(one["kwargs"]["payloads"])) for one in recorded] == [
        (batch_task_name(ITEMS), BATCH_MAX),
        (batch_task_name(ITEMS), 3),
    ]
    assert [p for one in recorded for p in one["kwargs"]["payloads"]] == payloads
    ids = [one["task_id"] for one in recorded]
    assert (
        receipts
        == [Receipt(Provider.CELERY, ids[0])] * BATCH_MAX + [Receipt(Provider.CELERY, ids[1])] * 3
    )


def test_payloads_of_different_keys_go_in_different_batches_and_one_goes_alone(
    published: tuple[CeleryPublisher, list[Sent]],
) -> None:
    publisher, recorded = published
    payloads = [*items("done", "done", owner="a"), *items("done", owner="b")]
    messages = [
        prepare(ITEMS, Item.model_validate(p), dedup_id=f"e{i}") for i, p in enumerate(payloads)
    ]

    receipts = publisher.publish(messages)

    assert [(one["name"], one["kwargs"]) for one in recorded] == [
        (batch_task_name(ITEMS), {"payloads": payloads[:2], "ids": ["e0", "e1"]}),
        (ITEMS.event, {"payload": payloads[2]}),
    ]
    assert receipts[2] == Receipt(Provider.CELERY, "e2")  # alone: under its dedup id


def batch_ids(publisher: CeleryPublisher, recorded: list[Sent], dedup_ids: list[str | None]) -> str:
    """The task id of the one batch that `dedup_ids` (one payload each) are published as."""
    payloads = items(*["done"] * len(dedup_ids))
    messages = [
        prepare(ITEMS, Item.model_validate(p), dedup_id=one)
        for p, one in zip(payloads, dedup_ids, strict=True)
    ]
    recorded.clear()
    receipts = publisher.publish(messages)
    assert len(recorded) == 1 and len(set(receipts)) == 1
    task_id: str = recorded[0]["task_id"]
    return task_id


def test_a_batch_is_named_after_its_first_delivery_and_how_many_follow(
    published: tuple[CeleryPublisher, list[Sent]],
) -> None:
    assert batch_ids(*published, ["m1", "m2", "m3"]).startswith("m1+2.")


def test_batches_that_start_with_the_same_delivery_but_hold_others_have_different_ids(
    published: tuple[CeleryPublisher, list[Sent]],
) -> None:
    first = batch_ids(*published, ["m1", "m2", "m3"])
    relisted = batch_ids(*published, ["m1", "m4", "m5"])  # the folder changed in between

    assert first != relisted


def test_the_same_deliveries_batched_again_keep_their_batch_id(
    published: tuple[CeleryPublisher, list[Sent]],
) -> None:
    assert batch_ids(*published, ["m1", "m2"]) == batch_ids(*published, ["m1", "m2"])


def test_a_batch_with_a_delivery_without_a_dedup_id_gets_a_new_id_each_time(
    published: tuple[CeleryPublisher, list[Sent]],
) -> None:
    first = batch_ids(*published, ["m1", None])

    assert first.startswith("batch-")
    assert first != batch_ids(*published, ["m1", None])


# The core ----------------------------------------------------------------------------


def _raising(error: Exception) -> Any:
    def body(payloads: Sequence[Item], delivery: Delivery) -> list[Result]:
        raise error

    return dataclasses.replace(ITEMS, batch_body=body)


BAD_VALUE = DataError("INSERT ...", {}, ValueError("a NUL in a string"))


def test_a_data_error_in_a_batch_of_many_is_a_retry_of_each_not_a_failure() -> None:
    results = run_batch(_raising(BAD_VALUE), items("done", "done"), Delivery("t", "d", 0))
    assert [result.outcome for result in results] == [Outcome.RETRY, Outcome.RETRY]


def test_a_data_error_in_a_batch_of_one_fails_it_as_run_job_would() -> None:
    (result,) = run_batch(_raising(BAD_VALUE), items("done"), Delivery("t", "d", 0))
    assert result.outcome is Outcome.FAILED


def test_a_retry_later_of_a_whole_batch_keeps_its_wait() -> None:
    results = run_batch(
        _raising(RetryLater("rate limited", 120.0)), items("done", "done"), Delivery("t", "d", 0)
    )
    assert {(r.outcome, r.retry_after) for r in results} == {(Outcome.RETRY, 120.0)}


def test_a_split_batch_of_a_job_without_retries_still_runs_each_payload_alone(
    app: Celery, sent: list[Sent]
) -> None:
    payloads = items("done", "fail")
    back = {REDELIVERIES_HEADER: "1"}  # once is more than its retries

    app.tasks[batch_task_name(ONCE)].apply(kwargs={"payloads": payloads}, headers=back)

    assert [one["kwargs"]["payload"] for one in sent] == payloads
    assert hooked(payloads) == []  # nothing given up unrun
