"""The shim's Redis keys (Celery's are kombu's business), all named here, and `key()`,
which puts every key (the app's too) under REDIS_KEY_PREFIX, so that deployments and
test runs sharing one Redis never meet."""

from __future__ import annotations

import asyncio
import weakref
from functools import lru_cache

import redis
from redis import asyncio as redis_asyncio

from config import get_settings

DELIVERED = "jobbridge:delivered:"  # + provider:delivery id -> final outcome, with a TTL
# + QStash token id (jti) -> the message id it came with, until the token expires.
SEEN_SIGNATURE = "jobbridge:seen-signature:"
# Per-key limits on the Celery path (bridge/celery/limits.py), each + job fn_id:key value.
# Sorted set of the runs holding a concurrency slot: holder token -> lease expiry (ms).
LIMIT_HOLDERS = "jobbridge:limit:holders:"
# Sorted set of recent starts for a throttle: start token -> start time (ms).
LIMIT_STARTS = "jobbridge:limit:starts:"


def key(*parts: str) -> str:
    return get_settings().redis_key_prefix + "".join(parts)


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def client() -> redis.Redis:
    return _client_for(_url())


# An asyncio client's connections belong to the event loop that opened them: one client
# per loop and URL (a web process runs one loop; tests run several).
LOOP_CONNECTIONS = 64
_loop_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[str, redis_asyncio.Redis]
] = weakref.WeakKeyDictionary()


def loop_client() -> redis_asyncio.Redis:
    """The running event loop's client, for round trips made on the loop itself."""
    url, loop = _url(), asyncio.get_running_loop()
    found = _loop_clients.get(loop)
    if found is not None and found[0] == url:
        return found[1]
    # A pool that makes a caller wait for a connection when all are in use (the default
    # one refuses at once, past 100), so a burst of deliveries queues instead of failing.
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=LOOP_CONNECTIONS,
        timeout=5,
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    made = redis_asyncio.Redis.from_pool(pool)  # closes the pool when it is closed
    _loop_clients[loop] = (url, made)
    return made


async def close_loop_client() -> None:
    """Close the running event loop's client, if it made one (at the web app's end)."""
    found = _loop_clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found[1].aclose()


def _url() -> str:
    url = get_settings().redis_url
    if url is None:
        raise RuntimeError("REDIS_URL is not set")
    return url
