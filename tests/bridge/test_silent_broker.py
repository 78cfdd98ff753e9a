"""A broker that goes silent without closing its connections (a failover, a NAT or
firewall timeout) fails a publish within seconds, so that it fails over, instead of
holding it forever; once the broker answers again, publishing resumes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import redis
from kombu.connection import ConnectionPool

from bridge.celery import publisher
from bridge.celery.config import BROKER_TIMEOUT_SECONDS
from bridge.celery.producer import producer_app
from bridge.errors import PublishError
from bridge.publishing import enqueue
from bridge.receipt import Receipt
from config import Provider, Settings
from tasks.scheduled_actions import ExecuteScheduledAction, execute_scheduled_action
from tests.support.rabbitmq import rabbitmq_vhost
from tests.support.services import TEST_REDIS_URL
from tests.support.tcp_proxy import TcpProxy

# A publish tries three times, each waiting BROKER_TIMEOUT_SECONDS at most; the rest is
# margin for a loaded machine.
FAILS_WITHIN_SECONDS = 3 * BROKER_TIMEOUT_SECONDS + 15


def _publish() -> Receipt:
    payload = ExecuteScheduledAction(scheduled_action_id=f"silent-{uuid.uuid4().hex}")
    return enqueue(execute_scheduled_action, payload)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_behind_proxy(
    request: pytest.FixtureRequest, configure: Callable[..., Any]
) -> Iterator[TcpProxy]:
    """Celery alone publishes, to a real broker reached through a proxy the test can
    freeze."""
    if request.param == "redis":
        prefix = f"silent-{uuid.uuid4().hex[:8]}:"
        try:
            with TcpProxy(*_host_and_port(TEST_REDIS_URL, 6379)) as proxy:
                settings = configure(
                    BROKER_URL=None,
                    REDIS_URL=_through(TEST_REDIS_URL, proxy),
                    REDIS_KEY_PREFIX=prefix,
                    JOB_PROVIDER="celery",
                    JOB_FAILOVER="false",
                )
                yield from _publishing(settings, proxy)
        finally:  # after the proxy has closed: nothing it held can arrive later
            _delete_keys(prefix)
        return
    with rabbitmq_vhost() as vhost, TcpProxy(*_host_and_port(vhost.url, 5672)) as proxy:
        settings = configure(
            BROKER_URL=_through(vhost.url, proxy), JOB_PROVIDER="celery", JOB_FAILOVER="false"
        )
        assert settings.broker_kind == "rabbitmq"
        yield from _publishing(settings, proxy)


def _host_and_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _through(url: str, proxy: TcpProxy) -> str:
    """The URL with its host and port replaced by the proxy's (its credentials kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return parts._replace(
        netloc=f"{credentials}@{proxy.address}" if credentials else proxy.address
    ).geturl()


def _delete_keys(prefix: str) -> None:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _publishing(settings: Settings, proxy: TcpProxy) -> Iterator[TcpProxy]:
    try:
        assert _publish().provider is Provider.CELERY  # a pooled connection is open now
        yield proxy
    finally:
        proxy.thaw()
        producer_app(settings).close()


def test_a_publish_to_a_broker_gone_silent_fails_within_seconds(
    broker_behind_proxy: TcpProxy,
) -> None:
    broker_behind_proxy.freeze()
    started = time.monotonic()

    with pytest.raises(PublishError, match="broker refused or unreachable"):
        _publish()

    assert time.monotonic() - started < FAILS_WITHIN_SECONDS


def test_publishing_resumes_once_the_broker_answers_again(broker_behind_proxy: TcpProxy) -> None:
    broker_behind_proxy.freeze()
    with pytest.raises(PublishError):
        _publish()

    broker_behind_proxy.thaw()

    assert _publish().provider is Provider.CELERY


def test_a_failed_publish_leaves_no_open_connection_in_the_pool(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RabbitMQ confirm that timed out may still arrive: on a pooled connection it would
    be taken for the next message's. kombu replaces a pooled connection when the block
    holding its producer raises, so the publisher lets the error out of that block."""
    app = producer_app(configure(JOB_PROVIDER="celery", JOB_FAILOVER="false"))
    _publish()  # the pool holds an open connection now

    def broker_fails(*_: Any) -> None:
        raise TimeoutError("no confirm within the timeout")

    monkeypatch.setattr(publisher, "_send_chunk", broker_fails)
    with pytest.raises(PublishError):
        _publish()

    # Celery's broker connection pool (celery-types calls it a ProducerPool).
    pool = cast(ConnectionPool, app.pool)
    with pool.acquire(block=True) as connection:
        assert not connection.connected
