"""Which database errors the data caused (retrying cannot help) and which are passing,
and which errors say that a store (the database, Redis) is away.

A job that feeds the database a value it refuses (too long, a NUL byte, a number out of
range, a broken reference) fails the same way on every retry: that is a permanent
failure, answered so that no provider retries it. A lost connection, a deadlock, a lock
timeout or a server restart pass: those are retried. PostgreSQL says which is which in
the error's SQLSTATE; the table below is the one place that reads it.
"""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from bridge.errors import first_line
from config.exiting import debug_requested

# A store that is away (or answered too late): retried later.
STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, OperationalError, InterfaceError)
STORE_AWAY = "could not reach the database or Redis; see the log"

# SQLSTATE codes or two-character classes whose cause is the data itself.
DATA_SQLSTATES: dict[str, str] = {
    "22": "data exception (too long, out of range, bad encoding, NUL byte)",
    "23502": "a required value is missing",
    "23503": "it refers to a row that does not exist",
    "23514": "a check constraint refuses it",
    "54000": "a value is over a program limit (e.g. too deeply nested)",
}
# Everything else is transient, notably: 08 connection, 40001/40P01 serialization and
# deadlock, 53 insufficient resources, 55P03 lock not available, 57 operator intervention
# (shutdown, statement timeout), 23505 unique violation (a concurrent writer won: the
# retry sees its row), 42 undefined table or column (a deploy ahead of its migration).


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def data_caused(error: BaseException) -> str | None:
    """Why the data is to blame for this database error, or None when it may pass."""
    if not isinstance(error, DBAPIError):
        return None
    code = _sqlstate(error)
    if code is None:
        # The driver refused the value before sending it (psycopg: a NUL in a string).
        return "the database driver refused a value" if isinstance(error, DataError) else None
    return DATA_SQLSTATES.get(code) or DATA_SQLSTATES.get(code[:2])


def store_unreachable(error: BaseException) -> bool:
    """Whether the error says a store could not be reached: its text is the client's
    own and names the store's host and port, so outside the log only its kind is told.
    A database error its server reported (a deadlock, a timeout) has a SQLSTATE and
    names no host."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return True
    return isinstance(error, OperationalError | InterfaceError) and _sqlstate(error) is None


def log_failure(logger: logging.Logger, error: BaseException, message: str, *args: object) -> None:
    """Log an error a delivery met: a store that could not be reached in one WARNING line
    (an outage to wait out, not a bug: JOBBRIDGE_DEBUG=1 adds the traceback), anything
    else at ERROR with its traceback."""
    if store_unreachable(error) and not debug_requested():
        logger.warning(f"{message}: %s: %s", *args, type(error).__name__, first_line(error))
    else:
        logger.error(message, *args, exc_info=error)


def told_outside(error: BaseException) -> str:
    """An error as a provider is told it (its run history, its dashboard, its dead
    letters): its kind and first line, or for a store that could not be reached its kind
    only. The rest (a statement and its parameters, a traceback) goes to the log alone."""
    if store_unreachable(error):
        return f"{type(error).__name__}: {STORE_AWAY}"
    return f"{type(error).__name__}: {first_line(error)}"
