"""Reads from the event loop (`read_one_on_loop`): the row `read_one` would give, the
reads of one turn in one round trip, a database that fails or is late reported at once
and rested from, and nothing read where asyncpg might not reach what libpq reaches."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.exc import DatabaseError, OperationalError

from bridge.store import idle_connections, loop_reads
from bridge.store.loop_reads import NotReadableOnLoop, close_loop_pool, read_one_on_loop
from bridge.store.point_reads import read_one
from bridge.store.tables import ProcessedDelivery
from tests.support.loop_connections import connections_opened
from tests.support.processed import BY_ID, FINISHED, record
from tests.support.wait import wait_on_loop

ROOT = select(func.sqrt(bindparam("number", type_=Integer)).label("root"))


def on_loop(reading: Callable[[], Awaitable[Any]]) -> Any:
    """What `reading` gives on a loop of its own, whose pool is closed after."""

    async def run() -> Any:
        try:
            return await reading()
        finally:
            await close_loop_pool()

    return asyncio.run(run())


def together(*reads: tuple[Any, dict[str, Any]]) -> list[Any]:
    """The answers to `reads` (statement, parameters) asked at once, an exception in place
    of an answer."""

    async def reading() -> list[Any]:
        asked = (read_one_on_loop(statement, values) for statement, values in reads)
        return list(await asyncio.gather(*asked, return_exceptions=True))

    answers: list[Any] = on_loop(reading)
    return answers


def by_id(delivery_id: str) -> tuple[Any, dict[str, Any]]:
    return BY_ID, {"id": delivery_id}


def test_reads_asked_together_each_get_their_own_row() -> None:
    for number in range(3):
        record(f"msg_loop_{number}", FINISHED + timedelta(minutes=number))

    found = together(
        by_id("msg_loop_2"), by_id("msg_loop_none"), by_id("msg_loop_0"), by_id("msg_loop_1")
    )

    assert [row and row.finished_at for row in found] == [
        FINISHED + timedelta(minutes=2),
        None,
        FINISHED,
        FINISHED + timedelta(minutes=1),
    ]


def test_a_row_read_on_the_loop_is_the_row_read_one_gives() -> None:
    record("msg_loop_same")

    [on_the_loop] = together(by_id("msg_loop_same"))

    assert on_the_loop == read_one(*by_id("msg_loop_same"))
    assert on_the_loop.finished_at.tzinfo is not None  # the column type's own conversion


def test_reads_asked_in_one_turn_of_the_loop_take_one_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record("msg_loop_trip")
    batches: list[int] = []
    real_fetchmany = asyncpg.Connection.fetchmany

    async def counting(self: asyncpg.Connection, query: str, args: Any, **options: Any) -> Any:
        batches.append(len(list(args)))
        return await real_fetchmany(self, query, args, **options)

    monkeypatch.setattr(asyncpg.Connection, "fetchmany", counting)

    found = together(*(by_id("msg_loop_trip") for _ in range(5)), by_id("msg_loop_none"))

    assert batches == [6]
    assert [row and row.outcome for row in found] == ["done"] * 5 + [None]


def test_a_read_made_alone_is_not_numbered_into_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    record("msg_loop_alone")

    async def refuse(*args: Any, **options: Any) -> Any:
        raise AssertionError("a batch for one read")

    monkeypatch.setattr(asyncpg.Connection, "fetchmany", refuse)

    [found] = together(by_id("msg_loop_alone"))

    assert found is not None and found.outcome == "done"


def test_a_read_the_server_refuses_fails_its_batch_with_the_servers_error() -> None:
    record("msg_loop_beside")

    refused, beside = together((ROOT, {"number": -1}), by_id("msg_loop_beside"))

    assert isinstance(refused, DatabaseError) and not isinstance(refused, OperationalError)
    assert refused.orig is not None and refused.orig.sqlstate == "2201F"  # type: ignore[attr-defined]
    assert beside is refused  # its caller reads from a thread


def test_a_connection_whose_read_was_refused_reads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    record("msg_loop_again")
    opened = connections_opened(monkeypatch)

    async def reading() -> Any:
        for _ in range(3):
            await read_one_on_loop(*by_id("msg_loop_again"))
        with pytest.raises(DatabaseError):
            await read_one_on_loop(ROOT, {"number": -1})
        return await read_one_on_loop(*by_id("msg_loop_again"))

    found = on_loop(reading)

    assert found is not None and found.outcome == "done"
    assert len(opened) == 1  # one connection did all five


def test_a_connection_idle_too_long_is_closed_and_another_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record("msg_loop_idle")
    opened = connections_opened(monkeypatch)

    async def reading() -> Any:
        await read_one_on_loop(*by_id("msg_loop_idle"))
        monkeypatch.setattr(idle_connections, "IDLE_SECONDS", 0.0)  # idle since: too long
        found = await read_one_on_loop(*by_id("msg_loop_idle"))
        await closed_within(opened[0], 2)
        return found

    found = on_loop(reading)

    assert found is not None and found.outcome == "done"
    assert len(opened) == 2 and opened[0].is_closed()


def test_a_quiet_loop_closes_its_idle_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle_connections, "IDLE_SECONDS", 0.05)
    opened = connections_opened(monkeypatch)
    record("msg_loop_quiet")

    async def reading() -> bool:
        await read_one_on_loop(*by_id("msg_loop_quiet"))
        return await closed_within(opened[0], 2)  # no read after: the sweep's timer

    assert on_loop(reading) is True


async def closed_within(connection: asyncpg.Connection, seconds: float) -> bool:
    await wait_on_loop(connection.is_closed, timeout=seconds, what="the connection to close")
    return connection.is_closed()


def test_a_connection_whose_read_timed_out_is_closed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_reads, "READ_TIMEOUT_SECONDS", 0.2)
    opened = connections_opened(monkeypatch)

    async def reading() -> bool:
        with pytest.raises(OperationalError):
            await read_one_on_loop(select(func.pg_sleep(3).label("slept")), {})
        # The batch's task ends after its reader is told; the connection's protocol
        # state is unknown, so it is closed, never lent again.
        return await closed_within(opened[0], 2)

    assert on_loop(reading) is True


def test_more_reads_than_connections_wait_for_one_and_all_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_reads, "LOOP_POOL_SIZE", 2)
    opened = connections_opened(monkeypatch)
    record("msg_loop_many")

    async def reading() -> list[Any]:
        reads = []
        for _ in range(12):  # each asked in a turn of its own: a batch each, at most 2 out
            reads.append(asyncio.ensure_future(read_one_on_loop(*by_id("msg_loop_many"))))
            await asyncio.sleep(0)
        return list(await asyncio.gather(*reads))

    found = on_loop(reading)

    assert [row.outcome for row in found] == ["done"] * 12
    assert len(opened) <= 2


def test_a_late_batch_gives_up_at_once_and_the_loop_rests(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loop_reads, "READ_TIMEOUT_SECONDS", 0.2)
    slow = select(func.pg_sleep(3).label("slept"))
    record("msg_loop_quick")

    async def reading() -> tuple[tuple[object, object], float, NotReadableOnLoop | None]:
        started = time.monotonic()
        answers = await asyncio.gather(
            read_one_on_loop(slow, {}),
            read_one_on_loop(*by_id("msg_loop_quick")),
            return_exceptions=True,
        )
        waited = time.monotonic() - started
        try:
            await read_one_on_loop(*by_id("msg_loop_quick"))
        except NotReadableOnLoop as resting:
            return answers, waited, resting
        return answers, waited, None

    (late, same_batch), waited, resting = on_loop(reading)

    assert isinstance(late, OperationalError)
    assert "no answer in 0.2 s" in str(late)
    assert same_batch is late
    assert waited < 2  # told at once, not once the server confirms the cancel
    assert resting is not None  # the next reads go to a thread for a while
    assert caplog.text.count("reads from the event loop rest") == 1


def test_a_reader_that_gives_up_leaves_the_loop_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_reads, "LOOP_POOL_SIZE", 1)
    slow = select(func.pg_sleep(1).label("slept"))
    record("msg_loop_after")

    async def reading() -> Any:
        reader = asyncio.ensure_future(read_one_on_loop(slow, {}))
        await asyncio.sleep(0.1)  # let it take the only connection (not a synchronisation)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        return await read_one_on_loop(*by_id("msg_loop_after"))

    found = on_loop(reading)

    assert found is not None and found.outcome == "done"


def test_a_database_url_naming_its_application_reads_under_that_name(
    configure: Callable[..., Any],
) -> None:
    configure(
        DATABASE_URL=f"{os.environ['DATABASE_URL']}?application_name=jobbridge-web&connect_timeout=3"
    )
    name = select(func.current_setting("application_name").label("name"))

    [found] = together((name, {}))

    assert found.name == "jobbridge-web"


@pytest.mark.parametrize(
    ("suffix", "environment"),
    [
        ("?options=-csearch_path%3Dother", {}),  # a parameter asyncpg does not take
        ("?sslrootcert=system", {}),  # libpq's system CAs; a file name to asyncpg
        ("", {"PGOPTIONS": "-csearch_path=other"}),  # read by libpq only
        ("", {"PGSERVICE": "jobbridge"}),  # asyncpg reads services otherwise
    ],
)
def test_a_database_asyncpg_might_find_elsewhere_than_libpq_is_read_from_a_thread(
    configure: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    environment: dict[str, str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    configure(DATABASE_URL=os.environ["DATABASE_URL"] + suffix)

    [refused] = together(by_id("msg_x"))

    assert isinstance(refused, NotReadableOnLoop)


def test_a_database_url_naming_no_host_is_read_from_a_thread(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGHOST", raising=False)
    configure(DATABASE_URL="postgresql://postgres@/jobbridge")  # libpq's default socket

    [refused] = together(by_id("msg_x"))

    assert isinstance(refused, NotReadableOnLoop)


def test_a_parameter_whose_name_the_sql_escapes_reads_its_row() -> None:
    record("msg_loop_escaped")
    statement = select(ProcessedDelivery.outcome).where(
        ProcessedDelivery.delivery_id == bindparam("delivery id.x")
    )

    [found] = together((statement, {"delivery id.x": "msg_loop_escaped"}))

    assert found is not None and found.outcome == "done"


def test_closing_the_pool_answers_the_reads_still_waiting_to_be_sent() -> None:
    record("msg_loop_closing")

    async def reading() -> Any:
        await read_one_on_loop(*by_id("msg_loop_closing"))  # the pool is open
        waiting = asyncio.ensure_future(read_one_on_loop(*by_id("msg_loop_closing")))
        await asyncio.sleep(0)  # it has asked, and waits for the end of this turn
        await close_loop_pool()
        return await waiting

    found = on_loop(reading)

    assert found is not None and found.outcome == "done"
