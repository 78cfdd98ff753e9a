"""Sender categorization's progress in Redis: one hash per account, sender -> queued or
done, with a TTL refreshed on every write.

Marking a sender done twice changes nothing: the totals are counts of distinct
senders, not counters a retry could bump twice. Without REDIS_URL no progress is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from typing import cast

from bridge.store import redis_store
from config import get_settings
from tasks import redis_keys

# The producer's and the job's logger: progress is part of what they report.
log = logging.getLogger("jobbridge.categorize")

PROGRESS_TTL_SECONDS = 60 * 60  # refreshed on every write: progress of a finished run fades
QUEUED, DONE = "queued", "done"


def progress(email_account_id: str) -> dict[str, int]:
    """`{"total", "completed"}`: senders queued (or run) within the last hour, and how
    many of them are done. Zeros when there is no Redis to keep progress in."""
    if not _progress_enabled():
        return {"total": 0, "completed": 0}
    states = cast("list[bytes]", redis_store.client().hvals(_progress_key(email_account_id)))
    return {"total": len(states), "completed": sum(1 for s in states if s == DONE.encode())}


def _progress_enabled() -> bool:
    if get_settings().redis_url:
        return True
    _say_progress_is_off()
    return False


@cache
def _say_progress_is_off() -> None:
    # Once per process: every batch would otherwise repeat it.
    log.info("REDIS_URL is not set: sender categorization progress is kept nowhere")


def _progress_key(account_id: str) -> str:
    return redis_store.key(redis_keys.CATEGORIZE_PROGRESS, account_id)


def mark_queued(account_id: str, senders: Sequence[str]) -> list[str]:
    """Mark the senders the progress does not know yet; returns those it marked."""
    if not senders or not _progress_enabled():
        return []
    key = _progress_key(account_id)
    with redis_store.client().pipeline(transaction=True) as pipe:
        for sender in senders:
            pipe.hsetnx(key, sender, QUEUED)
        pipe.expire(key, PROGRESS_TTL_SECONDS)
        *fresh, _ = pipe.execute()
    return [sender for sender, new in zip(senders, fresh, strict=True) if new]


def mark_done(account_id: str, senders: Sequence[str]) -> None:
    """Marking a sender done twice is no change at all: nothing is counted twice."""
    if not senders or not _progress_enabled():
        return
    key = _progress_key(account_id)
    with redis_store.client().pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=dict.fromkeys(senders, DONE))
        pipe.expire(key, PROGRESS_TTL_SECONDS)
        pipe.execute()


def forget(account_id: str, senders: Sequence[str]) -> None:
    """Take back the marks of senders whose publish failed (best effort)."""
    if not senders or not _progress_enabled():
        return
    try:
        redis_store.client().hdel(_progress_key(account_id), *senders)
    except Exception:
        # Best effort on a path that is already failing: the TTL clears it in the end.
        log.warning("could not take back the categorization progress of %s", account_id)
