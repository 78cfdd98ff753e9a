"""Pooled PostgreSQL connections: pinged only after they sat idle, and each execution of
a prepared statement planned for the tables as they are."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from bridge.store import db


@pytest.fixture
def pinged(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The connections the pool pinged (the dialect's ping, counted)."""
    bound = db.engine()
    assert bound.dialect.name == "postgresql"
    # Start from an empty pool: the pool hands out its connections first in, first out,
    # so with earlier tests' connections in it a checkout would not get the last one back.
    bound.dispose()
    pings: list[object] = []
    real_ping = bound.dialect.do_ping

    def counting_ping(connection: Any) -> bool:
        pings.append(connection)
        return bool(real_ping(connection))

    monkeypatch.setattr(bound.dialect, "do_ping", counting_ping)
    return pings


def backend_pid(bound: Engine) -> int:
    with bound.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pid: int, bound: Engine) -> None:
    url = bound.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_back_in_use_at_once_is_not_pinged(pinged: list[object]) -> None:
    bound = db.engine()
    first = backend_pid(bound)

    assert backend_pid(bound) == first  # the same pooled connection
    assert pinged == []


def test_a_connection_that_sat_idle_is_pinged_first(
    pinged: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = db.engine()
    first = backend_pid(bound)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)

    assert backend_pid(bound) == first
    assert len(pinged) == 1


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error(
    pinged: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = db.engine()
    first = backend_pid(bound)  # the pool's one connection, terminated below
    terminate(first, bound)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)

    replacement = backend_pid(bound)

    assert replacement != first
    assert len(pinged) == 1


def test_a_statement_run_often_is_planned_anew_each_time() -> None:
    # psycopg prepares a statement it has run five times; PostgreSQL would then keep a
    # generic plan, made for the tables as they were (a young table: a scan).
    statement = text("SELECT count(*) FROM bulk_process_item WHERE job_id = :job")
    with db.engine().connect() as connection:
        for _ in range(12):
            connection.execute(statement, {"job": "some-run"})
        plans = connection.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%FROM bulk_process_item WHERE job_id%'"
            )
        ).one()

    assert plans.generic_plans == 0
    assert plans.custom_plans >= 6


def test_a_server_older_than_the_plan_setting_keeps_its_plans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PostgreSQL 11 has no plan_cache_mode: setting it would fail every connection.
    monkeypatch.setattr(db, "PLAN_CACHE_MODE_SINCE", 10**9)
    bound = db.engine()
    bound.dispose()

    try:
        with bound.connect() as connection:
            mode = connection.execute(text("SHOW plan_cache_mode")).scalar_one()
    finally:
        bound.dispose()  # later tests get connections opened with the setting

    assert mode == "auto"
