"""One-row reads (`read_one`): the row or None, typed as the columns say, outside any
transaction, and a broken connection reported as SQLAlchemy reports it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy.exc import OperationalError

from bridge.store import db
from bridge.store.point_reads import read_one
from bridge.store.tables import ProcessedDelivery
from tests.support.processed import BY_ID, record
from tests.support.services import free_port
from tests.support.wait import wait_for


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


def test_a_statement_the_compiler_finishes_per_call_reads_its_row() -> None:
    record("msg_agg_1", datetime(2026, 12, 2, 8, 0, tzinfo=UTC))
    record("msg_agg_2", datetime(2026, 12, 2, 8, 0, tzinfo=UTC))
    joined = select(func.aggregate_strings(ProcessedDelivery.delivery_id, ",").label("ids")).where(
        ProcessedDelivery.outcome == bindparam("outcome")
    )

    found = read_one(joined, {"outcome": "done"})

    assert found is not None and sorted(found.ids.split(",")) == ["msg_agg_1", "msg_agg_2"]
