"""One-row reads from the event loop: the read behind an early answer, without a thread.

On PostgreSQL, through asyncpg, on connections of each event loop's own. A read costs
the loop about half of what psycopg's async connection costs it: psycopg's async path
drives a generator that registers and removes a socket reader at every step, where
asyncpg's protocol is an asyncio protocol compiled in Cython. The reads asked in one
turn of the loop go together (bridge/store/tick_batch.py): one alone as it is, several
as one statement run once for each in one round trip (asyncpg's `fetchmany`, the
statement numbered so that each finds its own row); a read that fails fails the others
of its batch, whose callers then read from a thread. The statement is the one SQLAlchemy
compiles for its asyncpg dialect (positional `$n` parameters), its values and its row
converted by that dialect's processors, so a row reads the same as from `read_one`
(bridge/store/point_reads.py). What it saved: docs/BENCHMARKS.md.

Everything else raises NotReadableOnLoop, and the caller reads from a thread instead:
another database, a statement SQLAlchemy finishes per call, an engine whose statements
are listened for (a tracer, a test counting round trips), a database asyncpg might
find elsewhere than libpq does (a DATABASE_URL parameter it does not take as libpq does,
such as `options`; a service file; no host named), and, for LOOP_REST_SECONDS, reads
after one that could not reach the database or timed out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy import Engine, Executable
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, OperationalError

from bridge.store.background import in_background
from bridge.store.db import engine
from bridge.store.idle_connections import IdleConnections
from bridge.store.point_reads import Compiled, bound_values, compiled_for, row_of
from bridge.store.tick_batch import TickBatch

# Connections a loop's reads keep open at most: its batches of reads on their way at once.
LOOP_POOL_SIZE = 10
# How long a read waits for a new connection to connect (libpq's `connect_timeout` of
# the app's other connections is not applied here); an idle one is taken at once.
CONNECT_SECONDS = 5.0
# How long a batch of reads may take before its readers give up (and the loop rests).
READ_TIMEOUT_SECONDS = 5.0
# After a read that could not reach the database, or timed out, the loop's reads rest
# this long: callers go to a thread at once rather than each wait, and the connections
# are made afresh, so a database that is back is used at once.
LOOP_REST_SECONDS = 5.0
# How long closing a connection waits for the server's goodbye (at the web app's end, or
# an idle one).
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
# Taken here: a connection's time limit is CONNECT_SECONDS; its name is a server setting.
_TAKEN_HERE = frozenset({"connect_timeout", "application_name"})
# libpq's environment that asyncpg reads differently or not at all (a service file, a
# server's address, `options` such as a search_path): with one of these set, reads from
# the loop could reach another server or schema than the app's own.
_LIBPQ_ONLY_ENVIRONMENT = ("PGSERVICE", "PGSERVICEFILE", "PGSYSCONFDIR", "PGOPTIONS", "PGHOSTADDR")

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


# A read: its SQL, the same SQL numbering its answer (for a batch), and its arguments.
_Read = tuple[str, str, list[Any]]
_Found = tuple[Any, ...] | None


class _Connections:
    """A loop's connections for its reads (bridge/store/idle_connections.py), and those
    lent to the batches on their way."""

    def __init__(self, arguments: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self._arguments = arguments
        self._idle: IdleConnections[asyncpg.Connection] = IdleConnections(loop, _close_politely)
        self._lent: set[asyncpg.Connection] = set()
        self._closing: list[asyncpg.Connection] = []
        self._closed = False

    async def take(self) -> asyncpg.Connection:
        while (connection := self._idle.take()) is not None:
            if not connection.is_closed():
                self._lent.add(connection)
                return connection
        made: asyncpg.Connection = await asyncpg.connect(**self._arguments, timeout=CONNECT_SECONDS)
        if self._closed:  # closed while it connected
            made.terminate()
            raise asyncpg.InterfaceError("the loop's connections are closed")
        self._lent.add(made)
        return made

    def give_back(self, connection: asyncpg.Connection) -> None:
        """A connection whose read ended with an answer (a row or the server's error)."""
        self._lent.discard(connection)
        if self._closed or connection.is_closed():
            connection.terminate()
        else:
            self._idle.give_back(connection)

    def drop(self, connection: asyncpg.Connection) -> None:
        """A connection whose read did not end (cancelled, timed out, cut off): its
        protocol's state is unknown, so it is closed at once without a word."""
        self._lent.discard(connection)
        connection.terminate()

    async def close(self) -> None:
        """Close the idle connections; those lent are closed as they are given back."""
        self._closed = True
        self._closing = self._idle.drain()
        await asyncio.gather(
            *(_close_politely(connection) for connection in self._closing),
            return_exceptions=True,
        )

    def terminate(self) -> None:
        """Close every connection at once (a `close` that took too long)."""
        self._closed = True
        for connection in [*self._lent, *self._closing, *self._idle.drain()]:
            connection.terminate()
        self._lent = set()


async def _close_politely(connection: asyncpg.Connection) -> None:
    try:
        await connection.close(timeout=CLOSE_SECONDS)
    except Exception:  # a server that went away meanwhile, or too slow to say goodbye
        connection.terminate()


@dataclass
class _LoopPool:
    bound: Engine  # the engine whose database it reads (one engine per DATABASE_URL)
    connections: _Connections
    loop: asyncio.AbstractEventLoop
    resting_until: float = 0.0
    # The reads of one turn of the loop, sent together (bridge/store/tick_batch.py).
    batch: TickBatch[_Read, _Found] = field(init=False)

    def __post_init__(self) -> None:
        self.batch = TickBatch(
            partial(_send_reads, self),
            self.loop,
            most_in_flight=LOOP_POOL_SIZE,  # one connection each
            timeout_seconds=READ_TIMEOUT_SECONDS,
            timed_out=partial(_timed_out, self),
        )


# asyncpg's connections belong to the event loop that opened them: one set per loop and
# database (a web process runs one loop; tests run several).
_loop_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
    weakref.WeakKeyDictionary()
)


async def read_one_on_loop(statement: Executable, parameters: Mapping[str, Any]) -> Any | None:
    """`read_one` from the running event loop, without a thread: the first row, with
    attribute access by column name, or None. A read that could not reach the database
    raises SQLAlchemy's OperationalError; one the server refused, its DatabaseError (the
    SQLSTATE on `.orig`). Where it cannot read (see the module), NotReadableOnLoop."""
    bound = engine()
    compiled = _compiled_for_loop(bound, statement)
    values = bound_values(compiled, parameters)
    numbered, names = _positional(compiled)
    arguments = [values[name] for name in names]
    entry = _loop_pool(bound)
    found = await entry.batch.ask((compiled.sql, numbered, arguments))
    return None if found is None else row_of(compiled, found)


# A compiled statement's SQL -> `_positional` of it (one per statement `_compile` keeps).
_positional_forms: dict[str, tuple[str, tuple[str, ...]]] = {}


def _positional(compiled: Compiled) -> tuple[str, tuple[str, ...]]:
    """The statement numbered for a batch, and the names its `$n` arguments have among
    the bound values (as the SQL escapes them). Numbered: its first row, tagged by one
    more parameter, so that the reads of a batch share one statement, run once for each
    in one round trip, and each finds its own row."""
    form = _positional_forms.get(compiled.sql)
    if form is None:
        escaped = compiled.compiled.escaped_bind_names
        names = tuple(escaped.get(name, name) for name in compiled.compiled.positiontup or ())
        numbered = (
            f"SELECT ${len(names) + 1}::int4 AS jobbridge_read, q.* "
            f"FROM ({compiled.sql}) AS q LIMIT 1"
        )
        form = _positional_forms[compiled.sql] = (numbered, names)
    return form


async def _send_reads(entry: _LoopPool, reads: list[_Read]) -> list[_Found]:
    if len(reads) == 1:
        sql, _, arguments = reads[0]
        found = await _fetch(entry, sql, arguments)
        return [None if found is None else tuple(found)]
    answers: list[_Found] = [None] * len(reads)
    together: dict[str, list[list[Any]]] = {}
    for number, (_, numbered, arguments) in enumerate(reads):
        together.setdefault(numbered, []).append([*arguments, number])
    for numbered, arguments_of_each in together.items():
        for row in await _fetch_many(entry, numbered, arguments_of_each):
            answers[row[0]] = tuple(row)[1:]
    return answers


def _timed_out(entry: _LoopPool) -> Exception:
    return _away(entry, "", [], TimeoutError(), f"no answer in {READ_TIMEOUT_SECONDS} s")


def _compiled_for_loop(bound: Engine, statement: Executable) -> Compiled:
    compiled = compiled_for(bound, statement, dialect=_DIALECT)
    if compiled is None:
        raise NotReadableOnLoop(f"{bound.dialect.name} ({bound.dialect.driver}), this statement")
    return compiled


async def _fetch(entry: _LoopPool, sql: str, arguments: list[Any]) -> asyncpg.Record | None:
    found: asyncpg.Record | None = await _run(entry, sql, arguments, many=False)
    return found


async def _fetch_many(
    entry: _LoopPool, sql: str, arguments_of_each: list[list[Any]]
) -> list[asyncpg.Record]:
    """The rows of `sql` run once for each list of arguments, in one round trip."""
    found: list[asyncpg.Record] = await _run(entry, sql, arguments_of_each, many=True)
    return found


async def _run(entry: _LoopPool, sql: str, arguments: list[Any], *, many: bool) -> Any:
    try:
        connection = await entry.connections.take()
    except Exception as error:  # refused, at login too, or no server fit (target_session_attrs)
        raise _away(
            entry, sql, arguments, error, f"no connection in {CONNECT_SECONDS} s"
        ) from error
    found: Any
    try:
        if many:
            found = await connection.fetchmany(sql, arguments)
        else:
            found = await connection.fetchrow(sql, *arguments)
    except BaseException as error:
        if isinstance(error, asyncpg.PostgresError) and not isinstance(error, _AWAY):
            entry.connections.give_back(connection)  # the server refused: it reads on
            raise DatabaseError(sql, arguments, error) from error
        entry.connections.drop(connection)
        if isinstance(error, _AWAY):
            raise _away(
                entry, sql, arguments, error, f"no answer in {READ_TIMEOUT_SECONDS} s"
            ) from error
        raise
    entry.connections.give_back(connection)
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
    """asyncpg's connection arguments for this DATABASE_URL, or None where they might
    not reach the server, database and schema that libpq (the app's psycopg) reaches."""
    query = dict(url.query)
    if set(query) - _ASYNCPG_TAKES - _TAKEN_HERE:
        return None
    if any(not isinstance(value, str) for value in query.values()):
        return None  # a parameter given twice
    if any(os.environ.get(name) for name in _LIBPQ_ONLY_ENVIRONMENT):
        return None
    if not (url.host or query.get("host") or os.environ.get("PGHOST")):
        return None  # libpq's one default socket directory; asyncpg tries several
    if query.get("sslrootcert") == "system":  # libpq 16's system CAs: a file to asyncpg
        return None
    query.pop("connect_timeout", None)
    name = query.pop("application_name", None)
    settings = {} if name is None else {"application_name": str(name)}
    dsn = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    return {"dsn": dsn, "server_settings": settings}


def _loop_pool(bound: Engine) -> _LoopPool:
    loop = asyncio.get_running_loop()
    entry = _loop_pools.get(loop)
    if entry is not None and entry.resting_until > time.monotonic():
        raise NotReadableOnLoop("resting after a failed read")
    if entry is None or entry.bound is not bound or entry.resting_until:
        if entry is not None:
            in_background(_close(entry))
        arguments = _connect_arguments(bound.url)
        if arguments is None:
            raise NotReadableOnLoop("DATABASE_URL has parameters asyncpg does not take")
        entry = _LoopPool(bound, _Connections(arguments, loop), loop)
        _loop_pools[loop] = entry
    return entry


async def _close(entry: _LoopPool) -> None:
    await entry.batch.close()  # what waits is sent, and every batch answered
    try:
        await asyncio.wait_for(entry.connections.close(), CLOSE_SECONDS)
    except Exception:  # a server slow to say goodbye (TimeoutError)
        entry.connections.terminate()


async def close_loop_pool() -> None:
    """Close the running event loop's connections, if it opened any (at the web app's
    end)."""
    entry = _loop_pools.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await _close(entry)
