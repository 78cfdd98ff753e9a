"""One-row reads on a delivery's hot path: on PostgreSQL, at about psycopg's own cost.

A delivery that finds nothing to do (a duplicate, a missing or finished action) is
answered from one read. Through SQLAlchemy's execution path (a Connection, an
execution context, a Result) that read cost about twice psycopg's own CPU, and on a
web process the delivery threads and the event loop share one GIL, so every extra
microsecond a thread holds it delays the answers of others. Here a `select()` built
once is compiled once per dialect; each read then takes a pooled connection
(SQLAlchemy's pool: its checkout ping and recycling apply), runs the SQL in
autocommit (no BEGIN or ROLLBACK round trip) and converts the row with the columns'
own result processors. A driver error comes out as SQLAlchemy's own exception
(OperationalError when the server is away), as from any other statement. Other
databases, other statements (such as `text()`) and an engine whose statements are
listened for (tracing) take SQLAlchemy's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine, Executable, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from bridge.store.db import autocommit, engine
from bridge.store.tick_batch import TickBatch

_Convert = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    statement: Select[Any]  # kept alive: the cache is keyed by its id
    dialect: Dialect
    compiled: SQLCompiler
    sql: str
    binds: Mapping[str, _Convert]
    results: tuple[_Convert, ...]
    row: Callable[..., tuple[Any, ...]]


# (statement, dialect) -> its compiled form, or None where SQLAlchemy's path is needed.
_compiled: dict[tuple[int, int], _Compiled | None] = {}


def read_one(statement: Executable, parameters: Mapping[str, Any]) -> Any | None:
    """The first row of a read-only query, with attribute access by column name (a
    named tuple on the fast path, a SQLAlchemy Row otherwise), or None."""
    bound = engine()
    compiled = _compiled_for(bound, statement)
    if compiled is not None:
        return _read_with_psycopg(bound, compiled, parameters)
    with autocommit() as connection:
        return connection.execute(statement, dict(parameters)).first()


def _compiled_for(bound: Engine, statement: Executable) -> _Compiled | None:
    """The statement as psycopg runs it directly, or None for SQLAlchemy's path: another
    driver, or anything listening for the statements the engine runs (a tracer, a test
    counting round trips), which only SQLAlchemy's path tells."""
    dispatch = bound.dispatch
    listened = dispatch.before_cursor_execute or dispatch.after_cursor_execute
    if bound.dialect.driver != "psycopg" or listened:
        return None
    return _compile(statement, bound.dialect)


def _compile(statement: Executable, dialect: Dialect) -> _Compiled | None:
    key = (id(statement), id(dialect))
    if key in _compiled:
        return _compiled[key]
    made: _Compiled | None = None
    if isinstance(statement, Select):
        compiled = statement.compile(dialect=dialect)
        # IN lists and literal renderings are finished per call: SQLAlchemy's path.
        if not any(bind.expanding or bind.literal_execute for bind in compiled.binds.values()):
            columns = list(statement.selected_columns)
            made = _Compiled(
                statement,
                dialect,
                compiled,
                str(compiled),
                {
                    name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                    for name, bind in compiled.binds.items()
                },
                tuple(
                    column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in columns
                ),
                namedtuple("row", [column.key for column in columns], rename=True),  # type: ignore[misc]
            )
    _compiled[key] = made
    return made


def _read_with_psycopg(
    bound: Engine, compiled: _Compiled, parameters: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    values = _bind_values(compiled, parameters)
    try:
        pooled = bound.raw_connection()
    except psycopg.Error as error:  # the pool's connect: wrapped as SQLAlchemy does
        raise DBAPIError.instance(
            None, None, error, psycopg.Error, dialect=compiled.dialect
        ) from error
    try:
        connection = cast("psycopg.Connection[Any]", pooled.driver_connection)
        try:
            connection.autocommit = True
            found = connection.execute(compiled.sql, values).fetchone()
            connection.autocommit = False  # as the pool's other users expect it
        except BaseException as error:
            broken = isinstance(error, psycopg.Error) and compiled.dialect.is_disconnect(
                error,  # type: ignore[arg-type]  # psycopg.Error is its DBAPI Error
                pooled.dbapi_connection,
                None,
            )
            # Its state is unknown (autocommit, perhaps): a fresh one replaces it.
            pooled.invalidate(error)
            if not isinstance(error, psycopg.Error):
                raise
            if broken:  # as SQLAlchemy does: the others were opened before the restart too
                bound.pool.dispose()
            raise DBAPIError.instance(
                compiled.sql,
                values,
                error,
                psycopg.Error,
                connection_invalidated=broken,
                dialect=compiled.dialect,
            ) from error
    finally:
        pooled.close()
    return None if found is None else _row(compiled, found)


def _bind_values(compiled: _Compiled, parameters: Mapping[str, Any]) -> MutableMapping[str, Any]:
    values = compiled.compiled.construct_params(dict(parameters))
    for name, convert in compiled.binds.items():
        if convert is not None and name in values:
            values[name] = convert(values[name])
    return values


def _row(compiled: _Compiled, found: tuple[Any, ...]) -> tuple[Any, ...]:
    return compiled.row(
        *(
            value if convert is None else convert(value)
            for value, convert in zip(found, compiled.results, strict=True)
        )
    )


# --- From the event loop ------------------------------------------------------------------

# Connections a loop's reads keep open at most: its pipelines of reads at once.
LOOP_POOL_SIZE = 10
# How long a read waits for one of them before it gives up, and the caller reads from
# a thread instead.
LOOP_WAIT_SECONDS = 1.0
# How long a pipeline of reads may take before its readers give up (and the loop rests).
READ_TIMEOUT_SECONDS = 5.0
# After a read that failed (the database away, or every connection busy for a second),
# the loop's reads rest this long: callers go to a thread at once rather than each wait,
# and the pool is made afresh, so a database that is back is used at once.
LOOP_REST_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5

log = logging.getLogger("jobbridge.store")


class NotReadableOnLoop(Exception):
    """This database or statement is read from a thread only (see `read_one_on_loop`)."""


# A read: its SQL and parameters; its answer: the first row, as the driver gives it.
_Read = tuple[str, Mapping[str, Any]]
_Found = tuple[Any, ...] | None


@dataclass
class _LoopPool:
    bound: Engine  # the engine whose database it reads (one engine per DATABASE_URL)
    pool: AsyncConnectionPool
    opening: asyncio.Task[None]  # awaited by every reader (shielded: one may be cancelled)
    # The reads of one turn of the loop, sent in one pipeline (bridge/store/tick_batch.py).
    batch: TickBatch[_Read, _Found] = field(init=False)
    resting_until: float = 0.0

    def __post_init__(self) -> None:
        self.batch = TickBatch(
            partial(_send_reads, self),
            self.opening.get_loop(),
            most_in_flight=LOOP_POOL_SIZE,  # one connection each
            timeout_seconds=READ_TIMEOUT_SECONDS,
            timed_out=partial(_timed_out, self),
        )


# An async pool's connections belong to the event loop that opened them: one pool per
# loop and database (a web process runs one loop; tests run several).
_loop_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
    weakref.WeakKeyDictionary()
)


async def read_one_on_loop(statement: Executable, parameters: Mapping[str, Any]) -> Any | None:
    """`read_one` from the running event loop, without a thread: on PostgreSQL, through
    psycopg's async connection pool (one per loop, its connections in autocommit), with
    the other reads asked in the same turn of the loop (one pipeline).
    Elsewhere (SQLite, `text()`, an engine whose statements are listened for), and for
    LOOP_REST_SECONDS after a read that failed, it raises NotReadableOnLoop, and the
    caller reads from a thread instead."""
    bound = engine()
    compiled = _compiled_for(bound, statement)
    if compiled is None:
        raise NotReadableOnLoop(f"{bound.dialect.name}: read from a thread")
    values = _bind_values(compiled, parameters)
    entry = await _loop_pool(bound)
    found = await entry.batch.ask((compiled.sql, values))
    return None if found is None else _row(compiled, found)


async def _send_reads(entry: _LoopPool, reads: list[_Read]) -> list[_Found]:
    """The first row of each read, from one connection: in one pipeline (one write, one
    read) when there are several. A read that fails fails the others of its pipeline."""
    try:
        async with entry.pool.connection(timeout=LOOP_WAIT_SECONDS) as connection:
            if len(reads) == 1:
                cursor = await connection.execute(*reads[0])
                return [await cursor.fetchone()]
            async with connection.pipeline() as pipeline:
                cursors = [await connection.execute(sql, values) for sql, values in reads]
                await pipeline.sync()
                return [await cursor.fetchone() for cursor in cursors]
    except (psycopg.OperationalError, PoolTimeout) as error:
        _rest(entry, error)
        raise


def _timed_out(entry: _LoopPool) -> Exception:
    error = psycopg.OperationalError(f"no answer from the database in {READ_TIMEOUT_SECONDS} s")
    _rest(entry, error)
    return error


async def _loop_pool(bound: Engine) -> _LoopPool:
    loop = asyncio.get_running_loop()
    entry = _loop_pools.get(loop)
    if entry is not None and entry.resting_until > time.monotonic():
        raise NotReadableOnLoop("resting after a failed read")
    if entry is None or entry.bound is not bound or entry.resting_until:
        if entry is not None:
            _close_later(entry)
        _, connect_args = bound.dialect.create_connect_args(bound.url)
        pool = AsyncConnectionPool(
            kwargs={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                **connect_args,
                "autocommit": True,
                # Nothing prepared server-side: psycopg counts a statement as prepared
                # even when the pipeline that prepared it failed, and every later read
                # of it on that connection would fail.
                "prepare_threshold": None,
            },
            min_size=0,  # opened on demand: nothing reconnects while the web app idles
            max_size=LOOP_POOL_SIZE,
            open=False,
            name="jobbridge-loop-reads",
        )
        entry = _LoopPool(bound, pool, loop.create_task(pool.open()))
        _loop_pools[loop] = entry
    if not entry.opening.done():
        await asyncio.shield(entry.opening)
    entry.opening.result()  # its error, if it failed
    return entry


def _rest(entry: _LoopPool, error: Exception) -> None:
    if not entry.resting_until:  # once per failure, not once per waiting reader
        log.warning(
            "reads from the event loop rest %.0f s, deliveries use threads: %s: %s",
            LOOP_REST_SECONDS,
            type(error).__name__,
            error,
        )
    entry.resting_until = time.monotonic() + LOOP_REST_SECONDS


_closing: set[asyncio.Task[None]] = set()  # kept until done: the loop holds tasks weakly


def _close_later(entry: _LoopPool) -> None:
    task = asyncio.get_running_loop().create_task(_close(entry))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close(entry: _LoopPool) -> None:
    with contextlib.suppress(Exception):
        await entry.opening
    await entry.batch.close()
    await entry.pool.close()


async def close_loop_pool() -> None:
    """Close the running event loop's pool, if it made one (at the web app's end)."""
    entry = _loop_pools.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await _close(entry)
