"""Engine and sessions for DATABASE_URL (a SQLite file by default, PostgreSQL in production)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote

from sqlalchemy import (
    URL,
    Connection,
    CursorResult,
    Engine,
    Executable,
    Insert,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from config import get_settings


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(existing_file_only(url), connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            # WAL lets the web process read while a worker writes.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # Ten kept connections: a web worker runs up to that many deliveries at once without
    # opening and closing overflow connections under steady load.
    bound = create_engine(url, pool_size=10, max_overflow=10)
    _ping_after_idle(bound)
    if bound.dialect.name == "postgresql":
        _plan_for_the_tables_as_they_are(bound)
    return bound


PLAN_CACHE_MODE_SINCE = 120000  # PostgreSQL 12, as libpq numbers server versions


def _plan_for_the_tables_as_they_are(bound: Engine) -> None:
    """Plan each execution of a prepared statement for its parameters and the tables as
    they are then (`plan_cache_mode = force_custom_plan`). psycopg prepares a statement
    it has run five times, and PostgreSQL then keeps one generic plan for it if that
    looked as cheap: on a table that was young then (a new database, a bulk run's first
    rule results and counts), a scan, kept until the table is next analyzed: a bulk
    page's lookups by key went from 0.06 ms to 5 ms over a run of 5,000 messages.
    Planning each execution costs about 10 us a statement. Set once a
    connection; behind PgBouncer in transaction mode, set it for the database instead
    (`ALTER DATABASE ... SET plan_cache_mode = force_custom_plan`)."""

    @event.listens_for(bound, "connect")
    def _custom_plans(connection: Any, _record: Any) -> None:
        if connection.info.server_version < PLAN_CACHE_MODE_SINCE:
            return  # the setting is PostgreSQL 12's: older servers keep their plans
        cursor = connection.cursor()
        cursor.execute("SET plan_cache_mode = force_custom_plan")
        cursor.close()
        connection.commit()


# A connection back in use within this many seconds is trusted without a ping: under
# load, pool_pre_ping's extra round trip on every checkout cost more than the query. A
# connection that broke sooner (a database restart) fails one statement, the pool drops
# all its connections, and the job is retried like any transient error.
PING_AFTER_IDLE_SECONDS = 5.0
_IDLE_SINCE = "jobbridge_idle_since"


def _ping_after_idle(bound: Engine) -> None:
    """pool_pre_ping, only for connections idle over PING_AFTER_IDLE_SECONDS
    (SQLAlchemy's documented pessimistic pattern: a `checkout` hook that raises
    DisconnectionError makes the pool open a fresh connection)."""

    @event.listens_for(bound, "checkin")
    def _checked_in(_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(bound, "checkout")
    def _checked_out(connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            bound.dialect.do_ping(connection)
        except Exception as error:
            raise DisconnectionError(f"idle connection failed its ping: {error}") from error


def engine() -> Engine:
    return engine_for(get_settings().sqlalchemy_url)


def existing_file_only(url: str) -> URL:
    """A SQLite file URL that opens the file only if it exists (SQLite's `mode=rw`): a
    command given a mistyped DATA_DIR or DATABASE_URL must not leave an empty database
    there. Only the migrations (`jobbridge db upgrade`, with an engine of their own)
    create the file. In-memory and URI-style URLs are left as they are."""
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return parsed
    path = quote(str(Path(database).absolute()))
    # SQLAlchemy appends the URL's other parameters (cache=shared, ...) to the URI.
    return parsed.set(database=f"file:{path}", query={"mode": "rw", **parsed.query, "uri": "true"})


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for another database, or one in memory)."""
    parsed = make_url(url)
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return Path(unquote(database.removeprefix("file:").split("?", 1)[0]))
    return Path(database)


@lru_cache(maxsize=8)
def _session_factory(bound: Engine) -> sessionmaker[Session]:
    return sessionmaker(bound, expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _session_factory(engine())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit() -> Iterator[Connection]:
    """A connection on which each statement commits on its own: no BEGIN and COMMIT
    round trips, each of which costs about as much as a short query. For reads, and for
    a write that is one statement."""
    with engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


@contextmanager
def autocommit_session() -> Iterator[Session]:
    """A session on an autocommit connection: each statement commits on its own, so it
    serves reads and writes that are one statement each (an UPDATE ... RETURNING claims
    a row in one round trip). Each statement sees the data as committed when it starts
    (as under READ COMMITTED, the default), not one snapshot for the block."""
    with autocommit() as connection:
        session = Session(connection, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()


def read_scope() -> AbstractContextManager[Session]:
    """A session for reads (an autocommit_session)."""
    return autocommit_session()


def rows_changed(
    session: Session, statement: Executable, parameters: dict[str, Any] | None = None
) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed (the race's verdict)."""
    result = cast("CursorResult[Any]", session.execute(statement, parameters))
    return int(result.rowcount)


def insert_ignoring_conflicts(
    table: Any, dialect: str, index_elements: list[str] | None = None
) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING (on `index_elements`, else on any unique
    constraint) in the dialect of the two databases the app runs on."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=index_elements)


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Try to hold a named lock across processes for the block; yields whether we got it.

    PostgreSQL: a session advisory lock (released when the block ends, or when the
    connection dies with its process). SQLite, the single-host embedded default: its
    one writer at a time serialises the work already, so the lock is always granted.
    """
    bound = engine()
    if bound.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with bound.connect() as connection:
        got = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        connection.commit()
        try:
            yield got
        finally:
            if got:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
