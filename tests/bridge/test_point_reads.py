"""One-row reads (`read_one`): the row or None, typed as the columns say, outside any
transaction, and a broken connection reported as SQLAlchemy reports it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Integer, bindparam, event, func, select, text
from sqlalchemy.exc import OperationalError

from bridge.store import db, point_reads
from bridge.store.point_reads import close_loop_pool, read_one, read_one_on_loop
from bridge.store.tables import ProcessedDelivery
from tests.support.services import free_port
from tests.support.wait import wait_for

BY_ID = select(ProcessedDelivery.outcome, ProcessedDelivery.finished_at).where(
    ProcessedDelivery.delivery_id == bindparam("id")
)


def record(delivery_id: str, finished_at: datetime) -> None:
    with db.session_scope() as session:
        session.add(
            ProcessedDelivery(
                provider="qstash",
                delivery_id=delivery_id,
                event="e",
                outcome="done",
                finished_at=finished_at,
            )
        )


def test_read_one_returns_the_first_row_by_column_name() -> None:
    finished = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    record("msg_found", finished)

    found = read_one(BY_ID, {"id": "msg_found"})

    assert found is not None
    assert (found.outcome, found.finished_at) == ("done", finished)
    assert found.finished_at.tzinfo is UTC  # the column type's own conversion


def test_read_one_returns_none_when_no_row_matches() -> None:
    assert read_one(BY_ID, {"id": "msg_nowhere"}) is None


def test_read_one_runs_outside_a_transaction() -> None:
    # PostgreSQL: the transaction's and the statement's start are the same instant only
    # for the first statement of a transaction; after a BEGIN they differ.
    alone = select((func.transaction_timestamp() == func.statement_timestamp()).label("alone"))

    assert read_one(alone, {}) == (True,)


def test_a_connection_used_for_a_read_still_runs_transactions() -> None:
    db.engine().dispose()  # one pooled connection: the one the read used
    read_one(BY_ID, {"id": "msg_x"})

    with pytest.raises(RuntimeError), db.session_scope() as session:
        session.add(
            ProcessedDelivery(
                provider="qstash", delivery_id="msg_rolled_back", event="e", outcome="done"
            )
        )
        session.flush()
        raise RuntimeError("roll it back")

    assert read_one(BY_ID, {"id": "msg_rolled_back"}) is None


def test_a_statement_sqlalchemy_must_finish_per_call_is_read_too() -> None:
    record("msg_in_list", datetime(2026, 12, 1, tzinfo=UTC))
    in_list = select(ProcessedDelivery.delivery_id).where(
        ProcessedDelivery.delivery_id.in_(bindparam("ids", expanding=True))
    )

    assert read_one(in_list, {"ids": ["msg_in_list", "msg_other"]}) == ("msg_in_list",)
    assert read_one(text("SELECT 1 AS one"), {}) == (1,)


def test_a_database_restart_fails_one_read_not_one_per_pooled_connection() -> None:
    bound = db.engine()
    bound.dispose()
    with bound.connect() as one, bound.connect() as two:  # two pooled connections
        pids = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in (one, two)]
    url = bound.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_for(
            lambda: (
                not admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                ).fetchall()
            ),
            what="both backends to end",
        )

    with pytest.raises(OperationalError) as failed:
        read_one(BY_ID, {"id": "msg_x"})

    assert failed.value.connection_invalidated
    assert read_one(BY_ID, {"id": "msg_x"}) is None  # not the other terminated one


def test_a_read_interrupted_midway_never_returns_its_connection_in_autocommit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Interrupted(BaseException):
        pass

    def interrupt(*_args: Any, **_kwargs: Any) -> Any:
        raise Interrupted()

    db.engine().dispose()
    with monkeypatch.context() as patched:
        patched.setattr(psycopg.Connection, "execute", interrupt)
        with pytest.raises(Interrupted):
            read_one(BY_ID, {"id": "msg_x"})

    with db.engine().connect() as connection:
        assert connection.connection.driver_connection.autocommit is False  # type: ignore[union-attr]


def test_a_read_is_seen_by_whatever_listens_for_the_engines_statements() -> None:
    bound = db.engine()
    seen: list[str] = []

    def trace(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(bound, "before_cursor_execute", trace)
    try:
        read_one(BY_ID, {"id": "msg_traced"})
    finally:
        event.remove(bound, "before_cursor_execute", trace)

    assert len(seen) == 1 and "processed_delivery" in seen[0]


def test_a_read_while_the_database_is_away_raises_operational_error(
    configure: Callable[..., Any],
) -> None:
    configure(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/away")

    with pytest.raises(OperationalError):
        read_one(BY_ID, {"id": "msg_x"})


def loop_reads(*reads: tuple[Any, dict[str, Any]]) -> list[Any]:
    """The answers to `reads` (statement, parameters) from the event loop, all asked in
    the same turn, an exception in place of an answer."""

    async def read() -> list[Any]:
        try:
            answers = await asyncio.gather(
                *(read_one_on_loop(statement, values) for statement, values in reads),
                return_exceptions=True,
            )
            return list(answers)
        finally:
            await close_loop_pool()

    return asyncio.run(read())


def by_id(delivery_id: str) -> tuple[Any, dict[str, Any]]:
    return BY_ID, {"id": delivery_id}


def test_reads_asked_in_one_turn_of_the_loop_go_in_one_pipeline_each_with_its_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    for number in range(3):
        record(f"msg_loop_{number}", finished + timedelta(minutes=number))
    pipelines: list[object] = []
    real_pipeline = psycopg.AsyncConnection.pipeline

    def counting_pipeline(self: psycopg.AsyncConnection[Any]) -> Any:
        pipelines.append(self)
        return real_pipeline(self)

    monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", counting_pipeline)

    found = loop_reads(
        by_id("msg_loop_2"), by_id("msg_loop_none"), by_id("msg_loop_0"), by_id("msg_loop_1")
    )

    assert len(pipelines) == 1
    assert [row and row.finished_at for row in found] == [
        finished + timedelta(minutes=2),
        None,
        finished,
        finished + timedelta(minutes=1),
    ]


def test_a_read_made_alone_on_the_loop_needs_no_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    record("msg_loop_alone", datetime(2026, 12, 2, 8, 0, tzinfo=UTC))

    def no_pipeline(self: psycopg.AsyncConnection[Any]) -> Any:
        raise AssertionError("a pipeline for one read")

    monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", no_pipeline)

    [found] = loop_reads(by_id("msg_loop_alone"))

    assert found is not None and found.outcome == "done"


def test_a_read_that_fails_on_the_loop_fails_the_others_of_its_turn() -> None:
    root = select(func.sqrt(bindparam("number", type_=Integer)).label("root"))

    found = loop_reads(by_id("msg_loop_x"), (root, {"number": -1}))  # PostgreSQL refuses it

    refused = psycopg.errors.InvalidArgumentForPowerFunction
    assert [type(answer) for answer in found] == [refused, refused]


def test_reads_the_database_does_not_answer_in_time_give_up_and_the_loop_rests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(point_reads, "READ_TIMEOUT_SECONDS", 0.1)
    slow = select(func.pg_sleep(2).label("slept"))

    async def read() -> list[Any]:
        try:
            in_time = await asyncio.gather(
                read_one_on_loop(slow, {}),
                read_one_on_loop(*by_id("msg_x")),
                return_exceptions=True,
            )
            later = await asyncio.gather(read_one_on_loop(*by_id("msg_x")), return_exceptions=True)
            return [*in_time, *later]
        finally:
            await close_loop_pool()

    timed_out, same_turn, later = asyncio.run(read())

    assert isinstance(timed_out, psycopg.OperationalError)
    assert str(timed_out) == "no answer from the database in 0.1 s"
    assert same_turn is timed_out
    assert isinstance(later, point_reads.NotReadableOnLoop)  # resting: a thread reads it


def test_a_connection_whose_pipeline_failed_still_reads_its_statements() -> None:
    record("msg_loop_again", datetime(2026, 12, 2, 8, 0, tzinfo=UTC))
    root = select(func.sqrt(bindparam("number", type_=Integer)).label("root"))

    async def read() -> Any:
        try:
            for _ in range(5):  # psycopg's default count: the next run would prepare it
                await read_one_on_loop(*by_id("msg_loop_again"))
            await asyncio.gather(
                read_one_on_loop(root, {"number": -1}),
                read_one_on_loop(*by_id("msg_loop_again")),
                return_exceptions=True,
            )
            return await read_one_on_loop(*by_id("msg_loop_again"))
        finally:
            await close_loop_pool()

    found = asyncio.run(read())

    assert found is not None and found.outcome == "done"
