"""Any error a command left unhandled, as an operator reads it: the exit status, what
failed (naming the variable or the service) and the fix."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from alembic.util.exc import CommandError
from amqp.exceptions import AMQPError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, StatementError

from bridge.db_errors import data_caused
from bridge.errors import AllProvidersFailed, PublishError, first_line
from bridge.inngest.client import event_api_origin
from bridge.ops.probes import broker_fix
from bridge.outcome import PermanentError
from bridge.store.db import sqlite_file
from config import ConfigError, get_settings
from config.broker import redacted_url

# What to do when a provider would not take a job, by provider (Celery's: broker_fix).
_PUBLISH_FIX = {
    "inngest": "check INNGEST_BASE_URL and INNGEST_EVENT_KEY, and that the server is up",
    "qstash": "check QSTASH_TOKEN and QSTASH_URL",
    "http": "check INTERNAL_API_URL, and that the web app is running",
}
_STATUS_HINT = "`jobbridge status` checks every service"
DEBUG_HINT = "run the command again with --debug for the traceback"


def explain(error: Exception) -> tuple[int, str]:
    """Exit status and plain lines (what failed, naming the service or variable; the fix)
    for an error no command handled."""
    if isinstance(error, ConfigError):
        return 2, str(error)
    if isinstance(error, PublishError) and isinstance(error.__cause__, DBAPIError):
        # Jobs due beyond the broker's horizon wait in the database: its error, not the broker's.
        error = error.__cause__
    for explainer in (
        _bad_value,
        _migrations_problem,
        _database_problem,
        _redis_problem,
        _publish_problem,
    ):
        found = explainer(error)
        if found is not None:
            return found
    if isinstance(error, PermanentError):
        return 1, str(error)  # e.g. an account whose mail provider has no adapter
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        # A server (a mailbox's IMAP or SMTP, an API): not a path.
        return 1, (
            f"cannot reach: {error}\n"
            "fix: check that the server is up and reachable from here, and its host and port"
        )
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        why = error.strerror or str(error)
        if isinstance(error, FileExistsError) and not Path(error.filename or "").is_dir():
            why = "it exists and is not a folder"  # mkdir's "File exists" for a file
        return 1, (
            f"cannot use{where}: {why}\n"
            f"fix: check that path and its permissions ({_path_source(error.filename)})"
        )
    return 1, (f"unexpected error: {type(error).__name__}: {error}\n{DEBUG_HINT}")


def _path_source(filename: object) -> str:
    """Where a path that could not be used came from: under DATA_DIR, the database
    DATABASE_URL names, or the file or option the command was given."""
    if not isinstance(filename, str | os.PathLike):
        return "the file or option given"
    path = Path(filename).resolve()
    try:
        settings = get_settings()
    except ConfigError:
        return "the file or option given"
    database = sqlite_file(settings.sqlalchemy_url)
    if database is not None and path == database.resolve():
        return "DATABASE_URL" if settings.database_url else "DATA_DIR"
    if path.is_relative_to(settings.data_dir.resolve()):
        return "DATA_DIR"
    return "the file or option given"


def _bad_value(error: Exception) -> tuple[int, str] | None:
    """A value from the input that the database (or its driver) cannot hold."""

    cause = data_caused(error)
    binding = isinstance(error, StatementError) and isinstance(
        error.orig, OverflowError | ValueError
    )
    if cause is None and binding:
        cause = "a value is out of range"  # refused while binding, before the database
    if cause is None:
        return None
    orig = error.orig if isinstance(error, StatementError) else None
    reason = first_line(orig or error)
    return 1, (
        f"a value given cannot be stored: {cause} ({reason})\n"
        "fix: correct that value in the file or option given"
    )


def _migrations_problem(error: Exception) -> tuple[int, str] | None:

    if not isinstance(error, CommandError) or "revision" not in str(error):
        return None
    return 2, (
        f"the database's migration history is not jobbridge's ({first_line(error)}): "
        "another app's migrations live in this schema\n"
        "fix: give jobbridge a database or schema of its own (see `jobbridge db upgrade`)"
    )


def _database_problem(error: Exception) -> tuple[int, str] | None:

    if isinstance(error, NoSuchModuleError) or (
        isinstance(error, ArgumentError) and "URL" in str(error)
    ):
        return 2, (
            f"DATABASE_URL is not a database URL jobbridge can use: {first_line(error)}\n"
            "fix: e.g. postgresql://user:password@host:5432/jobbridge, or unset it for "
            "the SQLite file in DATA_DIR"
        )
    if not isinstance(error, DBAPIError):
        return None
    data_dir = None  # the folder of the SQLite file, when DATABASE_URL is unset
    sqlite_path = None
    try:
        settings = get_settings()
        where = redacted_url(settings.sqlalchemy_url)
        sqlite_path = sqlite_file(settings.sqlalchemy_url)
        data_dir = settings.data_dir.resolve() if settings.database_url is None else None
    except ConfigError:
        where = "DATABASE_URL"
    reason = first_line(error.orig) if error.orig is not None else first_line(error)
    text = str(error.orig).lower()
    missing = _missing_sqlite_file(sqlite_path, text)
    if missing is not None:
        return 1, missing
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return 1, (
            f"the database at {where} has no jobbridge tables ({reason})\n"
            # The inbox app's command: the apps' commands are what meet missing tables.
            "fix: run `jobbridge db upgrade`"
        )
    if data_dir is not None:
        return 1, (
            f"cannot use the database at {where}: {reason}\n"
            f"fix: check that DATA_DIR ({data_dir}) is a folder this user may write in, "
            "or set DATABASE_URL"
        )
    return 1, (
        f"cannot use the database at {where}: {reason}\n"
        f"fix: check that it is running and that DATABASE_URL is right ({_STATUS_HINT})"
    )


def _missing_sqlite_file(path: Path | None, text: str) -> str | None:
    """What to say when the SQLite file the settings name does not exist (nothing but
    the migrations creates one), else None: also when its folder is missing or not
    writable, which is said as such."""
    if "unable to open database file" not in text or path is None or path.exists():
        return None
    folder = path.absolute().parent
    if not folder.is_dir():
        return (
            f"there is no folder {folder} for the database {path.name}: is DATA_DIR or "
            "DATABASE_URL mistyped?\n"
            "fix: correct it, or create that folder"
        )
    if not os.access(folder, os.W_OK):
        return None  # said below: a folder this user may not write in
    return (
        f"there is no database at {path.absolute()}: is DATA_DIR or DATABASE_URL "
        "mistyped? `jobbridge db upgrade` creates it\n"
        "fix: run `jobbridge db upgrade`"
    )


def _redis_problem(error: Exception) -> tuple[int, str] | None:

    # AMQPError: what py-amqp raises past kombu (a refused login, a missing vhost).
    if not isinstance(error, (RedisError, BrokerError, AMQPError)):
        return None
    broker = not isinstance(error, RedisError)
    try:
        settings = get_settings()
    except ConfigError:
        settings = None
    if not broker:
        where = redacted_url(settings.redis_url or "REDIS_URL") if settings else "REDIS_URL"
        return 1, (
            f"Redis at {where} failed: {first_line(error)}\n"
            f"fix: start Redis, or correct REDIS_URL ({_STATUS_HINT})"
        )
    where = redacted_url(settings.broker_url) if settings else "BROKER_URL"
    return 1, (
        f"the Celery broker at {where} failed: {first_line(error)}\n"
        f"fix: {broker_fix(settings)} ({_STATUS_HINT})"
    )


def _publish_problem(error: Exception) -> tuple[int, str] | None:

    if not isinstance(error, PublishError):
        return None
    return 1, f"could not publish: {error}\n{publish_fix(error)}"


def publish_fix(error: Exception) -> str:
    """The fix line for a PublishError: what to check for each provider that failed."""

    failed = error.errors if isinstance(error, AllProvidersFailed) else [error]
    fixes = dict.fromkeys(_fix_for(e.provider.value) for e in failed if isinstance(e, PublishError))
    return f"fix: {'; '.join(fixes)} ({_STATUS_HINT})"


def _fix_for(provider: str) -> str:
    if provider not in ("celery", "inngest"):
        return _PUBLISH_FIX.get(provider, "see the error")
    try:
        settings = get_settings()
    except ConfigError:
        return broker_fix(None) if provider == "celery" else _PUBLISH_FIX[provider]
    if provider == "celery":
        return broker_fix(settings)
    if settings.inngest_is_dev:  # no key: the dev server, where the variable says
        origin = event_api_origin(settings)
        return f"check that the Inngest dev server at {origin} is up (INNGEST_DEV)"
    return _PUBLISH_FIX[provider]
