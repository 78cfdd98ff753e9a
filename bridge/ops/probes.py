"""Bounded probes of each service (database, broker, Redis, Inngest, QStash, workers): a probe
that hangs on a dead host is worse than one that says "down" after two seconds."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpx
import redis
from kombu import Connection
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bridge.apps import AppAudit, AuditResult
from bridge.celery.producer import new_celery
from bridge.inngest.client import api_origin
from bridge.ops.audit import QStashAudit, qstash_queues
from bridge.ops.measure import describe, ms_since
from config import Settings

# The shim cannot know how an app migrates its database; the inbox app's way is named.
MIGRATE_HINT = "run the app's migrations (`jobbridge db upgrade` for the inbox app)"


@dataclass(frozen=True)
class Check:
    """One service's line: ok=None means not configured (neither good nor bad)."""

    name: str
    ok: bool | None
    required: bool
    detail: str
    latency_ms: float | None = None
    # What failed without where (no hosts, users or paths), for public answers (/healthz).
    error_type: str | None = None

    @property
    def failing(self) -> bool:
        return self.required and self.ok is False

    @property
    def state(self) -> str:
        if self.ok is None:
            return "not configured"
        if self.ok:
            return "up"
        return "DOWN" if self.required else "warning"


def _userinfo(url: str) -> tuple[str, str, str]:
    """`url` as (scheme and "://", user and password, the rest), split at the last "@"."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    secret, _, rest = rest.rpartition("@")
    return scheme + separator, secret, rest


def shown_url(url: str) -> str:
    """`url` as a page, a command or a log may show it: scheme, host, port and path.
    Nothing between the scheme and the last "@" (a user and password, even a password
    holding an unencoded "@", ":" or "/"), and no query or fragment (where drivers and
    services take passwords and tokens too). Every URL shown goes through here."""
    scheme, _, rest = _userinfo(url)
    return scheme + re.split(r"[?#]", rest, maxsplit=1)[0]


def failure(error: BaseException, url: str) -> str:
    """`describe(error)` for a connection to `url`, scrubbed (`scrubbed`)."""
    return scrubbed(describe(error), url)


def scrubbed(text: str, url: str) -> str:
    """`text` (an error about `url`) without any part of the URL's user and password, nor
    its query or fragment: a driver that splits a malformed URL at its first "@" (a
    password with an unencoded "@") names the rest of the password as part of the host,
    and an HTTP client's error may quote the URL it asked."""
    _, secret, rest = _userinfo(url)
    # The user and password, and each tail of them after a ":" or "@", as a host's prefix.
    tails = {secret[i + 1 :] for i, c in enumerate(secret) if c in ":@"} | {secret}
    for tail in sorted(tails - {""}, key=len, reverse=True):
        text = text.replace(tail + "@", "")
    for tail in re.split(r"[?#]", rest)[1:]:  # the query, the fragment
        if tail:
            text = text.replace(tail, "…")
    return text


def _where(url: str) -> SplitResult:
    """The parts of the shown URL (host, port, path), never who."""
    return urlsplit(shown_url(url))


def _host_port(parts: SplitResult, default_port: int) -> str:
    """ "host:port", with the defaults filled in."""
    try:
        port: int | str = parts.port or default_port
    except ValueError:  # not a number: shown as "?" rather than failing the probe
        port = "?"
    return f"{parts.hostname or 'localhost'}:{port}"


def database_label(settings: Settings) -> str:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database}"
    # Not SQLAlchemy's reading: it splits at the first "@", so a password holding an
    # unencoded "@" would show its end as the host.
    parts = _where(settings.sqlalchemy_url)
    where = f"{_host_port(parts, 5432)}{parts.path or '/'}"
    return f"{url.get_backend_name()} {where}"


@contextmanager
def probe_engine(settings: Settings, timeout: float) -> Iterator[Engine]:
    """An engine of its own with a connect timeout and no pool, so a probe neither waits on
    a dead host for the driver's default (forever, for libpq) nor keeps connections."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        connect_args: dict[str, Any] = {"timeout": timeout}
    else:
        # libpq's connect_timeout is whole seconds, at least 2.
        connect_args = {"connect_timeout": max(2, round(timeout))}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        yield engine
    finally:
        engine.dispose()


def check_database(
    settings: Settings, timeout: float, audit: AppAudit | None = None
) -> tuple[Check, AuditResult | None]:
    """Reach the database; with the app's `audit`, also count what it holds (which
    proves the schema is there)."""
    label = database_label(settings)
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        # Connecting would create an empty file: say what is missing instead.
        return Check("database", False, True, f"{label}: no such file; {MIGRATE_HINT}"), None
    started = time.perf_counter()
    try:
        with probe_engine(settings, timeout) as engine, engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            latency = ms_since(started)
            try:
                counted = audit.collect(connection) if audit is not None else None
            except SQLAlchemyError as error:
                return (
                    Check(
                        "database",
                        False,
                        True,
                        f"{label}: reachable but the schema is not "
                        f"({failure(error, settings.sqlalchemy_url)}); "
                        f"{MIGRATE_HINT}",
                        latency,
                        type(error).__name__,
                    ),
                    None,
                )
    except Exception as error:
        failed = Check(
            "database", False, True, f"{label}: {failure(error, settings.sqlalchemy_url)}"
        )
        return replace(failed, error_type=type(error).__name__), None
    return Check("database", True, True, label, latency), counted


def _redis_label(url: str) -> str:
    parts = _where(url)
    return f"redis {_host_port(parts, 6379)}{parts.path}"


def _rabbitmq_label(url: str) -> str:
    """Where, without who: host, port and virtual host, never the user or password."""
    parts = _where(url)
    where = _host_port(parts, 5671 if parts.scheme == "amqps" else 5672)
    # kombu's reading: no path or "/" is the default vhost "/", else the path unquoted.
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"rabbitmq {where} vhost {vhost}"


def _ping_redis(name: str, url: str, timeout: float) -> Check:
    label = _redis_label(url)
    started = time.perf_counter()
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except Exception as error:
        failed = Check(name, False, True, f"{label}: {failure(error, url)}")
        return replace(failed, error_type=type(error).__name__)
    finally:
        client.close()
    return Check(name, True, True, label, ms_since(started))


def _open_rabbitmq(url: str, timeout: float) -> Check:
    """Log in to the virtual host, as a worker would: a wrong password or a missing vhost
    fails here, not only a server that is down."""
    label = _rabbitmq_label(url)
    started = time.perf_counter()
    connection = Connection(url, connect_timeout=timeout)
    try:
        # No retries: the one attempt is bounded by the connect timeout, handshake included.
        connection.ensure_connection(max_retries=0)
    except Exception as error:
        failed = Check("rabbitmq", False, True, f"{label}: {failure(error, url)}")
        return replace(failed, error_type=type(error).__name__)
    finally:
        connection.release()
    return Check("rabbitmq", True, True, label, ms_since(started))


def check_broker(settings: Settings, timeout: float) -> Check:
    """The broker BROKER_URL (or REDIS_URL) names, named after what it is."""
    if settings.broker_kind == "rabbitmq":
        return _open_rabbitmq(settings.broker_url, timeout)
    if settings.broker_kind == "redis":
        return _ping_redis("redis", settings.broker_url, timeout)
    folder = settings.broker_folder / "queue"
    if not settings.data_dir.is_dir():
        return Check(
            "broker",
            False,
            True,
            f"filesystem broker: DATA_DIR {settings.data_dir.absolute()} does not exist "
            "(`jobbridge dev` or `jobbridge db upgrade` makes it; or is DATA_DIR mistyped?)",
            error_type="DATA_DIR does not exist",
        )
    if not (folder.is_dir() and os.access(folder, os.W_OK)):
        return Check(
            "broker",
            False,
            True,
            f"filesystem broker: {folder} is missing or not writable "
            "(set DATA_DIR, or BROKER_URL or REDIS_URL)",
            error_type="broker folder is missing or not writable",
        )
    return Check("broker", True, True, f"filesystem broker {folder}")


def check_redis_store(settings: Settings, timeout: float) -> Check | None:
    """Redis as the shim's store (delivery ledger, QStash replay guard, per-key limits)
    when the broker's line does not already cover it: None when it does, or when the
    embedded broker runs without Redis (the local default, nothing missing)."""
    if settings.redis_url == settings.broker_url:
        return None
    if settings.redis_url:
        name = "redis" if settings.broker_kind != "redis" else "redis store"
        return _ping_redis(name, settings.redis_url, timeout)
    if settings.broker_kind == "filesystem":
        return None
    return Check(
        "redis",
        None,
        False,
        "no REDIS_URL: delivery ledger and QStash replay guard in the database, "
        "per-key limits (concurrency, throttle) not enforced",
    )


def inngest_configured(settings: Settings) -> bool:
    return settings.inngest_publishes or settings.inngest_serves


def check_inngest(settings: Settings, timeout: float) -> Check:
    if not inngest_configured(settings):
        return Check(
            "inngest", None, False, "no INNGEST_EVENT_KEY, INNGEST_SIGNING_KEY or INNGEST_DEV"
        )
    origin = api_origin(settings)
    shown = shown_url(origin) + "/health"
    started = time.perf_counter()
    try:
        response = httpx.get(origin + "/health", timeout=timeout)
    except Exception as error:  # not only HTTPError: httpx.InvalidURL quotes the URL too
        return Check("inngest", False, True, f"{shown}: {failure(error, origin)}")
    latency = ms_since(started)
    # Any answer below 500 means the server is there (Inngest Cloud has no /health page);
    # 5xx means it is up but broken.
    if response.status_code >= 500:
        return Check("inngest", False, True, f"{shown}: HTTP {response.status_code}", latency)
    return Check("inngest", True, True, f"{shown}: HTTP {response.status_code}", latency)


def check_qstash(settings: Settings, timeout: float) -> tuple[Check, QStashAudit | None]:
    if settings.qstash_token is None:
        return Check("qstash", None, False, "no QSTASH_TOKEN"), None
    base = shown_url(settings.qstash_url or "https://qstash.upstash.io")
    found = qstash_queues(settings, timeout)
    if found.error is not None:
        return Check("qstash", False, True, f"{base}: {found.error}"), None
    return Check("qstash", True, True, f"{base}: token accepted", found.latency_ms), found


def check_workers(settings: Settings, timeout: float) -> Check:
    """Workers that answer a broadcast within `timeout`, with their running tasks.

    Not required: jobs wait in the broker until a worker comes, and a deployment that
    publishes only to Inngest or QStash may run none.
    """
    celery = new_celery(settings)
    try:
        replies = celery.control.inspect(timeout=timeout).active() or {}
    except Exception as error:
        return Check("celery workers", False, False, describe(error))
    finally:
        celery.close()
    if not replies:
        return Check("celery workers", False, False, f"no worker answered within {timeout:g}s")
    busy = sum(len(tasks or []) for tasks in replies.values())
    names = ", ".join(sorted(replies))
    # No latency: a broadcast always waits out its whole timeout for late repliers.
    return Check(
        "celery workers", True, False, f"{len(replies)} answering ({names}); {busy} tasks running"
    )


def broker_fix(settings: Settings | None) -> str:
    """What to do about an unreachable Celery broker: the service and the variable that
    named it (either variable, when the settings could not be read)."""
    if settings is None:
        return "start the broker, or correct BROKER_URL or REDIS_URL"
    if settings.broker_kind == "rabbitmq":
        return "start RabbitMQ, or correct BROKER_URL (user, password, virtual host)"
    if settings.broker_kind == "redis":
        named = "REDIS_URL" if settings.broker_url == settings.redis_url else "BROKER_URL"
        return f"start Redis, or correct {named}"
    return "make DATA_DIR writable (the embedded broker), or set BROKER_URL or REDIS_URL"
