"""What a valid REDIS_URL and DATABASE_URL are. Errors say what is wrong without the
value, which may hold a password."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from redis.connection import parse_url as redis_client_options
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

# redis-py's TCP forms, which kombu takes too (REDIS_URL is also the broker by default).
REDIS_SCHEMES = ("redis", "rediss")
_PORT_PROBLEM = "has a port that is not a number from 0 to 65535"
# The databases the migrations, the claims and the early answers' reads are written for.
SUPPORTED_DATABASES = ("postgresql", "sqlite")


def checked_redis_url(value: str) -> str:
    """REDIS_URL as given, its scheme lower-cased; ValueError unless it is a Redis URL."""
    scheme, separator, rest = value.strip().partition("://")
    if not separator or scheme.lower() not in REDIS_SCHEMES:
        raise ValueError("must be a Redis URL: redis://host:6379/0, or rediss:// for TLS")
    url = f"{scheme.lower()}://{rest}"
    check_port(url)
    check_redis_database(url)
    try:
        redis_client_options(url)  # type: ignore[no-untyped-call]  # its query options
    except ValueError as error:  # its words name the option, never the value
        raise ValueError(f"has a query option redis-py cannot read: {error}") from None
    return url


def check_redis_database(url: str) -> None:
    """ValueError unless a Redis URL's path is a database number (or none: 0). redis-py
    ignores any other path and uses database 0; kombu, the broker's client, fails on
    it when the worker starts."""
    if re.fullmatch(r"/?[0-9]*", urlsplit(url).path) is None:
        raise ValueError("has a path that is not a database number, e.g. redis://host:6379/0")


def check_port(url: str) -> None:
    """ValueError unless the URL's port, if it has one, is a number from 0 to 65535."""
    try:
        _ = urlsplit(url).port  # reading it checks it
    except ValueError:
        raise ValueError(_PORT_PROBLEM) from None


def checked_database_url(value: str) -> str:
    """DATABASE_URL as given; ValueError unless SQLAlchemy can read it and knows its
    database (the driver itself is loaded when the first connection is made). Read as
    SQLAlchemy reads it: a password may hold `#`, `?` or `/`."""
    try:
        url = make_url(with_driver(value.strip()))
    except ArgumentError:
        raise ValueError(
            "is not a database URL, e.g. postgresql://user:password@host:5432/db"
        ) from None
    except ValueError:  # the port: SQLAlchemy reads it with int()
        raise ValueError(_PORT_PROBLEM) from None
    if url.port is not None and not 0 <= url.port <= 65535:
        raise ValueError(_PORT_PROBLEM)
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"names a database SQLAlchemy does not know ({url.drivername}); use "
            "postgresql://user:password@host:5432/db, or unset it for SQLite under DATA_DIR"
        ) from None
    if url.get_backend_name() == "sqlite" and _in_memory(url.database, url.query):
        raise ValueError(
            "names an in-memory SQLite database, which every connection (every process, "
            "every command) sees new and empty; give it a file (sqlite:////path/to/db), "
            "or unset it for SQLite under DATA_DIR"
        )
    if url.get_backend_name() not in SUPPORTED_DATABASES:
        raise ValueError(
            f"names {url.get_backend_name()}; jobbridge runs on PostgreSQL "
            "(postgresql://user:password@host:5432/db) or SQLite (sqlite:///path, or unset "
            "for SQLite under DATA_DIR)"
        )
    dialect = url.get_dialect()
    try:
        usable = not dialect.is_async and dialect.import_dbapi() is not None
    except ImportError:
        usable = False
    if not usable:
        raise ValueError(
            f"names a driver jobbridge does not run on ({url.drivername}); leave the "
            "driver out (postgresql://user:password@host:5432/db takes psycopg 3)"
        )
    return value.strip()


def _in_memory(database: str | None, query: Mapping[str, object]) -> bool:
    """Whether a SQLite URL's database lives in memory: none or `:memory:`, or a
    `file:` URI opened with mode=memory."""
    return database in (None, "", ":memory:") or query.get("mode") == "memory"


def is_sqlite(database_url: str) -> bool:
    """Whether a DATABASE_URL that `checked_database_url` took names a SQLite database."""
    return make_url(with_driver(database_url)).get_backend_name() == "sqlite"


def with_driver(database_url: str) -> str:
    """The SQLAlchemy URL for DATABASE_URL: hosted PostgreSQL URLs name no driver (or
    the "postgres" name SQLAlchemy dropped, or psycopg2, which reads the same URL), and
    jobbridge ships psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url
