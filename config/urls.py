"""What a valid REDIS_URL and DATABASE_URL are. Errors say what is wrong without the
value, which may hold a password."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

REDIS_SCHEMES = ("redis", "rediss", "unix")


def checked_redis_url(value: str) -> str:
    """REDIS_URL as given; ValueError unless redis-py can connect by it."""
    scheme, separator, _ = value.strip().partition("://")
    if not separator or scheme.lower() not in REDIS_SCHEMES:
        raise ValueError(
            "must be a Redis URL: redis://host:6379/0, rediss:// (TLS) or unix:///path"
        )
    _check_port(value)
    return value.strip()


def checked_database_url(value: str) -> str:
    """DATABASE_URL as given; ValueError unless SQLAlchemy can read it and knows its
    database (the driver itself is loaded when the first connection is made)."""
    _check_port(value)
    try:
        url = make_url(with_driver(value.strip()))
        url.get_dialect()
    except NoSuchModuleError:  # an ArgumentError too: caught first
        raise ValueError(
            f"names a database SQLAlchemy does not know ({url.drivername}); use "
            "postgresql://user:password@host:5432/db, or unset it for SQLite under DATA_DIR"
        ) from None
    except (ArgumentError, ValueError):
        raise ValueError(
            "is not a database URL, e.g. postgresql://user:password@host:5432/db"
        ) from None
    return value.strip()


def _check_port(value: str) -> None:
    try:
        _ = urlsplit(value.strip()).port  # reading it checks it
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None


def with_driver(database_url: str) -> str:
    """The SQLAlchemy URL for DATABASE_URL: hosted PostgreSQL URLs name no driver (or
    the "postgres" name SQLAlchemy dropped), and jobbridge ships psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    return database_url
