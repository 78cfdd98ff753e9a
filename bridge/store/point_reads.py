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
listened for (tracing) take SQLAlchemy's path. Reads from the event loop, compiled here
too: bridge/store/loop_reads.py.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from sqlalchemy import Engine, Executable, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from bridge.store.db import autocommit, engine

_Convert = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Compiled:
    statement: Select[Any]  # kept alive: the cache is keyed by its id
    dialect: Dialect
    compiled: SQLCompiler
    sql: str
    binds: Mapping[str, _Convert]
    results: tuple[_Convert, ...]
    row: Callable[..., tuple[Any, ...]]


# (statement, dialect) -> its compiled form, or None where SQLAlchemy's path is needed.
_compiled: dict[tuple[int, int], Compiled | None] = {}


def read_one(statement: Executable, parameters: Mapping[str, Any]) -> Any | None:
    """The first row of a read-only query, with attribute access by column name (a
    named tuple on the fast path, a SQLAlchemy Row otherwise), or None."""
    bound = engine()
    compiled = compiled_for(bound, statement)
    if compiled is not None:
        return _read_with_psycopg(bound, compiled, parameters)
    with autocommit() as connection:
        return connection.execute(statement, dict(parameters)).first()


def compiled_for(
    bound: Engine, statement: Executable, dialect: Dialect | None = None
) -> Compiled | None:
    """The statement as a driver runs it directly (compiled for `dialect`, by default
    the engine's own), or None for SQLAlchemy's path: a database other than PostgreSQL
    through psycopg, anything listening for the statements the engine runs (a tracer, a
    test counting round trips), which only SQLAlchemy's path tells, or a statement that
    SQLAlchemy finishes per call."""
    dispatch = bound.dispatch
    listened = dispatch.before_cursor_execute or dispatch.after_cursor_execute
    if bound.dialect.driver != "psycopg" or listened:
        return None
    return _compile(statement, dialect or bound.dialect)


def _compile(statement: Executable, dialect: Dialect) -> Compiled | None:
    key = (id(statement), id(dialect))
    if key in _compiled:
        return _compiled[key]
    made: Compiled | None = None
    if isinstance(statement, Select):
        compiled = statement.compile(dialect=dialect)
        # IN lists and literal renderings are finished per call: SQLAlchemy's path.
        finished_per_call = compiled.literal_execute_params or compiled.post_compile_params
        if not finished_per_call and not any(
            bind.expanding or bind.literal_execute for bind in compiled.binds.values()
        ):
            columns = list(statement.selected_columns)
            made = Compiled(
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
    bound: Engine, compiled: Compiled, parameters: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    values = bound_values(compiled, parameters)
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
    return None if found is None else row_of(compiled, found)


def bound_values(compiled: Compiled, parameters: Mapping[str, Any]) -> MutableMapping[str, Any]:
    values = compiled.compiled.construct_params(dict(parameters))
    for name, convert in compiled.binds.items():
        if convert is not None and name in values:
            values[name] = convert(values[name])
    return values


def row_of(compiled: Compiled, found: tuple[Any, ...]) -> tuple[Any, ...]:
    return compiled.row(
        *(
            value if convert is None else convert(value)
            for value, convert in zip(found, compiled.results, strict=True)
        )
    )
