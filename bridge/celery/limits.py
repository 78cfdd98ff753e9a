"""Per-key limits on the Celery path: what Inngest and QStash enforce for us elsewhere.

A job's `concurrency` and `throttle` (declared once in `@job`, keyed on a payload field,
`emailAccountId` by default) become two sorted sets per (job, key value) in Redis:

* holders: the runs holding a concurrency slot, each a unique token scored by the
  moment its lease expires. A run takes a slot when it starts and gives it back on
  every way out; a run whose process was killed (hard time limit, OOM, SIGKILL) never
  gives it back, so its lease lasts the task's hard time limit plus a margin and the
  next attempt to start drops it.
* starts: a sliding window log of the starts within the last `period_seconds`, for
  at most `limit` starts in any such window.

Both are checked and taken in one Lua script, so a run refused by the throttle does
not hold a slot and a run refused for want of a slot does not use up a start. Time is
Redis's own clock (TIME), so workers whose clocks differ still agree on expiries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from redis.commands.core import Script

from bridge.registry import JobSpec
from bridge.store import redis_store

# A lease lasts the hard time limit plus this. The pool's timer starts before the body
# (and so before the slot is taken), so a run still holding a slot at its lease's end
# is certainly dead; the margin only absorbs scheduling delays on a loaded machine.
HOLDER_MARGIN_SECONDS = 30.0
# Waits between two tries for a slot: doubling from the first, capped, with jitter so
# the runs refused together do not all come back together. Nobody knows when a slot
# frees, so the cap bounds how long a free slot can stay unused.
FIRST_WAIT_SECONDS = 0.5
MAX_WAIT_SECONDS = 10.0

# KEYS[1] holders (token -> lease expiry, ms), KEYS[2] starts (token -> start, ms)
# ARGV: token, concurrency (0: none), lease ms, throttle limit (0: none), period ms
# Returns {1, "", 0} when admitted, else {0, reason, ms to wait (0: unknown)}.
_TRY_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token = ARGV[1]
local concurrency = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local period = tonumber(ARGV[5])
if concurrency > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= concurrency then
    return {0, 'concurrency', 0}
  end
end
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - period)
  if redis.call('ZCARD', KEYS[2]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, 'throttle', tonumber(oldest[2]) + period - now}
  end
  redis.call('ZADD', KEYS[2], now, token)
  redis.call('PEXPIRE', KEYS[2], period)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[1], now + lease, token)
  -- The set lives as long as its longest lease, so a key nobody uses disappears.
  if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
  end
end
return {1, '', 0}
"""


@dataclass(frozen=True)
class Policy:
    """A job's per-key limits, as the Celery adapter enforces them."""

    fn_id: str  # names the job in key names, as in the QStash flow-control key
    concurrency: int | None
    throttle_limit: int | None
    throttle_period_seconds: int | None


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: str = ""  # what refused: "concurrency", "throttle" or why Redis could not say
    wait_seconds: float = 0.0  # throttle: until a start leaves the window; 0: unknown


def policy_for(spec: JobSpec[Any]) -> Policy | None:
    """The job's limits (validated at declaration), or None if it has none."""
    if not spec.limited_by_key:
        return None
    throttle = spec.throttle
    return Policy(
        fn_id=spec.fn_id,
        concurrency=spec.concurrency,
        throttle_limit=throttle.limit if throttle else None,
        throttle_period_seconds=throttle.period_seconds if throttle else None,
    )


def holders_key(fn_id: str, value: str) -> str:
    return redis_store.key(redis_store.LIMIT_HOLDERS, fn_id, ":", value)


def starts_key(fn_id: str, value: str) -> str:
    return redis_store.key(redis_store.LIMIT_STARTS, fn_id, ":", value)


def lease_seconds(hard_time_limit_seconds: float) -> float:
    """How long a slot is held at most: past this its holder is dead, not slow."""
    return hard_time_limit_seconds + HOLDER_MARGIN_SECONDS


@lru_cache(maxsize=4)
def _script(client: redis.Redis) -> Script:
    # redis-py runs it with EVALSHA and loads it again after a SCRIPT FLUSH or a restart.
    return client.register_script(_TRY_START)


def try_start(policy: Policy, value: str, token: str, lease: float) -> Decision:
    """Take a slot and a start for `token` if both are free; otherwise take nothing."""
    client = redis_store.client()
    answer = _script(client)(
        keys=[holders_key(policy.fn_id, value), starts_key(policy.fn_id, value)],
        args=[
            token,
            policy.concurrency or 0,
            max(1, round(lease * 1000)),
            policy.throttle_limit or 0,
            (policy.throttle_period_seconds or 0) * 1000,
        ],
        client=client,
    )
    admitted, reason, wait_ms = answer
    reason_text = reason.decode() if isinstance(reason, bytes) else str(reason)
    return Decision(bool(admitted), reason_text, max(0.0, int(wait_ms) / 1000))


def release(policy: Policy, value: str, token: str) -> None:
    """Give the slot back (a start stays counted: it happened). Harmless if already gone."""
    if policy.concurrency is not None:
        redis_store.client().zrem(holders_key(policy.fn_id, value), token)


def come_back_in(decision: Decision, deferrals: int, rng: random.Random | None = None) -> float:
    """Seconds before a refused run tries again; `deferrals` is how often it was refused."""
    rng = rng or random.Random()
    if decision.reason == "throttle" and decision.wait_seconds > 0:
        # The moment a start leaves the window is known: come back just after it, spread
        # a little so the runs waiting for that same moment do not all meet there.
        return decision.wait_seconds * rng.uniform(1.0, 1.25) + 0.01
    ceiling = min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** min(deferrals, 16))
    return rng.uniform(ceiling / 2, ceiling)
