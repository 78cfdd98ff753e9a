"""The Celery broker BROKER_URL names: which one it is, what a valid URL is, how it may be
printed, and how far ahead RabbitMQ lets a worker hold a task (the ETA horizon)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from config.urls import check_port, check_redis_database

BrokerKind = Literal["rabbitmq", "redis", "filesystem"]

# The brokers BROKER_URL may name, by URL scheme (kombu's names; pyamqp is its amqp).
_SCHEMES: dict[str, BrokerKind] = {
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "pyamqp": "rabbitmq",
    "redis": "redis",
    "rediss": "redis",
}
_PRINTABLE_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{0,19}$")
# Without BROKER_URL or REDIS_URL: kombu's filesystem transport, with the host kombu
# assumes anyway named, or every connection a process opens logs "No hostname was
# supplied" (Flower opens one per refresh).
EMBEDDED_BROKER_URL = "filesystem://localhost//"
# RabbitMQ closes the channel of a delivery left unacked longer than its consumer_timeout,
# and a worker holds an ETA message unacked until the ETA and then while it runs. So on
# RabbitMQ the ETA horizon stays this far below consumer_timeout minus the hard time
# limit: for a due task's wait for a free pool process and the clocks' skew.
RABBITMQ_TIMEOUT_MARGIN_SECONDS = 300
# The horizon must outlast the minute between two runs of `celery.release-deferred`, or
# a job it releases could be late: below this, RabbitMQ's timeout leaves no usable room.
RABBITMQ_MIN_HORIZON_SECONDS = 120


def broker_kind(url: str) -> BrokerKind:
    """RabbitMQ, Redis, or (any other URL) the embedded broker."""
    return _SCHEMES.get(url.partition("://")[0].lower(), "filesystem")


def checked_broker_url(value: str) -> str:
    """BROKER_URL as given, its scheme lower-cased, or "" for unset; ValueError saying
    what is wrong, without the value (it may hold a password)."""
    value = value.strip()
    if not value:
        return ""
    scheme, separator, rest = value.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _SCHEMES:
        named = f"a {scheme}:// URL" if separator and _PRINTABLE_SCHEME.match(scheme) else "that"
        raise ValueError(
            "must be a RabbitMQ URL (amqp:// or amqps://, e.g. "
            "amqp://user:password@rabbitmq:5672/jobbridge) or a Redis URL (redis:// or "
            f"rediss://), not {named}; unset it for REDIS_URL or the embedded broker"
        )
    value = f"{scheme}://{rest}"
    check_port(value)
    if _SCHEMES[scheme] == "redis":
        check_redis_database(value)
    return value


def broker_options_problem(url: str) -> str | None:
    """Why kombu, the Celery broker's client, cannot take the query options of the
    broker's URL (it fails on them when a worker or a publish first connects), or None.
    Names the options, never their values."""
    query = urlsplit(url).query
    if broker_kind(url) == "filesystem" or not query:
        return None
    from kombu import Connection  # only for a URL with options: it imports kombu

    try:
        Connection(url)  # reads the options; connects to nothing
    except (TypeError, ValueError):
        names = ", ".join(sorted(parse_qs(query, keep_blank_values=True))) or query[:20]
        return f"has query options the Celery broker (kombu) cannot take: {names}"
    return None


def rabbitmq_horizon_limit(consumer_timeout: int, hard_time_limit: int) -> int:
    """The longest ETA horizon RabbitMQ's consumer timeout allows: a task may stay unacked
    for the horizon, then its run, then the margin."""
    return consumer_timeout - hard_time_limit - RABBITMQ_TIMEOUT_MARGIN_SECONDS


def rabbitmq_horizon(horizon: int, consumer_timeout: int, hard_time_limit: int) -> int:
    """`horizon` capped to what RabbitMQ allows; ValueError naming the variables when the
    consumer timeout leaves no usable room at all.

    A shorter horizon only keeps more jobs in the database until the release cron
    publishes them, so capping is always safe; a longer one gets channels closed.
    """
    room = rabbitmq_horizon_limit(consumer_timeout, hard_time_limit)
    if room < RABBITMQ_MIN_HORIZON_SECONDS:
        raise ValueError(
            f"on RabbitMQ (BROKER_URL), CELERY_HARD_TIME_LIMIT_SECONDS={hard_time_limit} "
            f"and a {RABBITMQ_TIMEOUT_MARGIN_SECONDS} s margin leave {max(room, 0)} s of "
            f"RABBITMQ_CONSUMER_TIMEOUT_SECONDS={consumer_timeout} for the ETA horizon, less "
            f"than the {RABBITMQ_MIN_HORIZON_SECONDS} s it needs (a worker holds a task "
            "unacked until its ETA and while it runs, and RabbitMQ closes the channel of a "
            "delivery unacked for longer): raise consumer_timeout in rabbitmq.conf and "
            "RABBITMQ_CONSUMER_TIMEOUT_SECONDS with it, or lower CELERY_HARD_TIME_LIMIT_SECONDS"
        )
    return min(horizon, room)


# Query options whose value is a credential (redis-py and libpq take `password` there,
# psycopg `sslpassword`, ...): matched on the option's name, whatever its case.
_SECRET_OPTION = re.compile(r"[^&=#]*(pass|pwd|secret|token|credential)[^&=#]*", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """`url` with the password in it (if any), and the value of every query option that
    names a password, a secret or a token, replaced by ***: what may be printed.

    A password with an unencoded "/", "?" or "#" still goes: the user part is then taken
    to end at the URL's last "@" (which may hide more than the password, never less)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = netloc.rpartition("@") if "@" in netloc else rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{rest[len(userinfo) + 1 :]}"
    return f"{scheme}://{_without_secret_options(rest)}"


def _without_secret_options(rest: str) -> str:
    """What follows a URL's scheme, with the values of its secret query options as ***."""
    before, question, query = rest.partition("?")
    if not question:
        return rest
    query, hash_, fragment = query.partition("#")
    options = []
    for option in query.split("&"):
        name, equals, _ = option.partition("=")
        secret = equals and _SECRET_OPTION.fullmatch(name)
        options.append(f"{name}=***" if secret else option)
    return f"{before}?{'&'.join(options)}{hash_}{fragment}"
