"""One-row reads from the event loop: the read behind an early answer, without a thread.

On PostgreSQL, through asyncpg (one pool per event loop). A read costs the loop about
half of what psycopg's async connection costs it: psycopg's async path drives a
generator that registers and removes a socket reader at every step, where asyncpg's
protocol is an asyncio protocol compiled in Cython. The statement is the one
SQLAlchemy compiles for its asyncpg dialect (positional `$n` parameters), its values
and its row converted by that dialect's processors, so a row reads the same as from
`read_one` (bridge/store/point_reads.py). What it saved: README, "Benchmarks".

Everything else raises NotReadableOnLoop, and the caller reads from a thread instead:
another database, a statement SQLAlchemy finishes per call, an engine whose statements
are listened for (a tracer, a test counting round trips), a DATABASE_URL with a
connection parameter asyncpg does not take as libpq does (`options`, say), and, for
LOOP_REST_SECONDS, reads after one that could not reach the database or timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Engine, Executable
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, OperationalError

from bridge.store.db import engine
from bridge.store.point_reads import Compiled, bound_values, compiled_for, row_of

# Connections a loop's reads keep open at most: its reads on their way at once.
LOOP_POOL_SIZE = 10
# How long a read waits for a connection (a free one, or a new one to connect).
LOOP_WAIT_SECONDS = 1.0
# How long a read may take before its reader gives up (and the loop rests).
READ_TIMEOUT_SECONDS = 5.0
# After a read that could not reach the database, or timed out, the loop's reads rest
# this long: callers go to a thread at once rather than each wait, and the pool is made
# afresh, so a database that is back is used at once.
LOOP_REST_SECONDS = 5.0
# How long the web app's end waits for reads on their way before it closes their pool.
CLOSE_SECONDS = 5.0

# The connection parameters asyncpg takes as libpq does (the rest of a DATABASE_URL's
# query, such as libpq's `options`, would change what a read means if left out).
_ASYNCPG_TAKES = frozenset(
    {
        "host",
        "port",
        "user",
        "password",
        "dbname",
        "database",
        "passfile",
        "service",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
    }
)
# Taken here: a connection's time limit is LOOP_WAIT_SECONDS; its name is a server setting.
_TAKEN_HERE = frozenset({"connect_timeout", "application_name"})

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]

log = logging.getLogger("jobbridge.store")


class NotReadableOnLoop(Exception):
    """This database or statement is read from a thread only (see `read_one_on_loop`)."""


# An error that says the database could not be reached, or not in time.
# (A server that shuts down or cancels a statement says so with SQLSTATE class 57.)
_AWAY = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


@dataclass
class _LoopPool:
    bound: Engine  # the engine whose database it reads (one engine per DATABASE_URL)
    pool: asyncpg.Pool
    opening: asyncio.Task[None]  # awaited by every reader (shielded: one may be cancelled)
    resting_until: float = 0.0


# An asyncpg pool's connections belong to the event loop that opened them: one pool per
# loop and database (a web process runs one loop; tests run several).
_loop_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
    weakref.WeakKeyDictionary()
)
# Tasks kept until done (the loop holds tasks weakly): connections given back after a
# failed read, pools closed after a rest.
_background: set[asyncio.Task[None]] = set()


async def read_one_on_loop(statement: Executable, parameters: Mapping[str, Any]) -> Any | None:
    """`read_one` from the running event loop, without a thread: the first row, with
    attribute access by column name, or None. A read that could not reach the database
    raises SQLAlchemy's OperationalError; one the server refused, its DatabaseError (the
    SQLSTATE on `.orig`). Where it cannot read (see the module), NotReadableOnLoop."""
    bound = engine()
    compiled = _compiled_for_loop(bound, statement)
    values = bound_values(compiled, parameters)
    arguments = [values[name] for name in compiled.compiled.positiontup or ()]
    entry = await _loop_pool(bound)
    found = await _fetch(entry, compiled.sql, arguments)
    return None if found is None else row_of(compiled, tuple(found))


def _compiled_for_loop(bound: Engine, statement: Executable) -> Compiled:
    compiled = compiled_for(bound, statement, dialect=_DIALECT)
    if compiled is None:
        raise NotReadableOnLoop(f"{bound.dialect.name} ({bound.dialect.driver}), this statement")
    return compiled


async def _fetch(entry: _LoopPool, sql: str, arguments: list[Any]) -> asyncpg.Record | None:
    try:
        connection = await entry.pool.acquire(timeout=LOOP_WAIT_SECONDS)
    except (*_AWAY, asyncpg.PostgresError) as error:  # refused at login: away for reads too
        raise _away(
            entry, sql, arguments, error, f"no connection in {LOOP_WAIT_SECONDS} s"
        ) from error
    try:
        found = await connection.fetchrow(sql, *arguments, timeout=READ_TIMEOUT_SECONDS)
    except BaseException as error:
        # Given back in the background: after a timeout or a cancellation, asyncpg waits
        # for the server to confirm the cancel, which a reader must not wait for.
        _in_background(entry.pool.release(connection, timeout=CLOSE_SECONDS))
        if isinstance(error, _AWAY):
            raise _away(
                entry, sql, arguments, error, f"no answer in {READ_TIMEOUT_SECONDS} s"
            ) from error
        if isinstance(error, asyncpg.PostgresError):
            raise DatabaseError(sql, arguments, error) from error
        raise
    await entry.pool.release(connection)
    return found


def _away(
    entry: _LoopPool, sql: str, arguments: list[Any], error: BaseException, late: str
) -> Exception:
    """The loop's reads rest; the error as SQLAlchemy's OperationalError (a timeout
    says what was late: asyncpg's says nothing)."""
    if isinstance(error, TimeoutError):
        error = TimeoutError(f"the database: {late}")
    if not entry.resting_until:  # once per failure, not once per waiting reader
        log.warning(
            "reads from the event loop rest %.0f s, deliveries use threads: %s: %s",
            LOOP_REST_SECONDS,
            type(error).__name__,
            error,
        )
    entry.resting_until = time.monotonic() + LOOP_REST_SECONDS
    return OperationalError(sql, arguments, error)


def _connect_arguments(url: URL) -> dict[str, Any] | None:
    """asyncpg's connection arguments for this DATABASE_URL, or None where they would
    not connect the way libpq does."""
    query = dict(url.query)
    if set(query) - _ASYNCPG_TAKES - _TAKEN_HERE:
        return None
    if any(not isinstance(value, str) for value in query.values()):
        return None  # a parameter given twice
    query.pop("connect_timeout", None)
    name = query.pop("application_name", None)
    settings = {} if name is None else {"application_name": str(name)}
    dsn = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    return {"dsn": dsn, "server_settings": settings}


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """A connection here only ever runs one SELECT outside a transaction: no session state
    to undo when it is given back (asyncpg's default reset costs a round trip)."""


async def _loop_pool(bound: Engine) -> _LoopPool:
    loop = asyncio.get_running_loop()
    entry = _loop_pools.get(loop)
    if entry is not None and entry.resting_until > time.monotonic():
        raise NotReadableOnLoop("resting after a failed read")
    if entry is None or entry.bound is not bound or entry.resting_until:
        if entry is not None:
            _in_background(_close(entry))
        arguments = _connect_arguments(bound.url)
        if arguments is None:
            raise NotReadableOnLoop("DATABASE_URL has parameters asyncpg does not take")
        pool = asyncpg.create_pool(
            **arguments,
            min_size=0,  # opened on demand: nothing reconnects while the web app idles
            max_size=LOOP_POOL_SIZE,
            timeout=LOOP_WAIT_SECONDS,
            reset=_nothing_to_reset,
        )
        entry = _LoopPool(bound, pool, loop.create_task(_open(pool)))
        _loop_pools[loop] = entry
    if not entry.opening.done():
        await asyncio.shield(entry.opening)
    entry.opening.result()  # its error, if it failed
    return entry


async def _open(pool: asyncpg.Pool) -> None:
    await pool  # min_size=0: makes the pool, connects nothing


def _in_background(work: Any) -> None:
    async def quietly() -> None:
        with contextlib.suppress(Exception):
            await work

    task = asyncio.get_running_loop().create_task(quietly())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _close(entry: _LoopPool) -> None:
    with contextlib.suppress(Exception):
        await entry.opening
    try:
        await asyncio.wait_for(entry.pool.close(), CLOSE_SECONDS)
    except Exception:  # reads still on their way (TimeoutError), or a pool never made
        with contextlib.suppress(Exception):
            entry.pool.terminate()


async def close_loop_pool() -> None:
    """Close the running event loop's pool, if it made one (at the web app's end)."""
    entry = _loop_pools.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await _close(entry)
