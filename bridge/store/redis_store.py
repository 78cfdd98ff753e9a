"""The shim's Redis keys (Celery's are kombu's business), all named here, and `key()`,
which puts every key (the app's too) under REDIS_KEY_PREFIX, so that deployments and
test runs sharing one Redis never meet."""

from __future__ import annotations

from functools import lru_cache

import redis

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
    url = get_settings().redis_url
    if url is None:
        raise RuntimeError("REDIS_URL is not set")
    return _client_for(url)
