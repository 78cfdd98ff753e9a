"""Inbox cleaning's progress in Redis: one hash per (account, job, thread) holding the
thread's decision (markDone, rule, reason), its status and what the UI shows of it.

The hash has a TTL. The decision is written once: a redelivery of `clean.process` reads
back the first one recorded instead of asking the AI again.
"""

from __future__ import annotations

from typing import cast

import redis

from bridge.store import redis_store
from config import get_settings
from tasks import redis_keys
from tasks.jobs.clean_rules import Decision
from tasks.mail.port import MailMessage

# Long enough for the UI to show a whole run's progress (at 6 threads a second per
# account, 10,000 threads take half an hour), short enough not to keep mail metadata.
STATE_TTL_SECONDS = 24 * 3600


def _state_key(account_id: str, job_id: str, thread_id: str) -> str:
    return redis_store.key(redis_keys.CLEAN_THREAD, f"{account_id}:{job_id}:{thread_id}")


def _redis() -> redis.Redis | None:
    # The embedded default has no Redis: no progress then; the CleanupThread rows and
    # the dedup ids still make every step happen once.
    return redis_store.client() if get_settings().redis_url else None


def thread_state(account_id: str, job_id: str, thread_id: str) -> dict[str, str]:
    """What the UI shows for a thread of a run: markDone, rule, reason, status, ..."""
    client = _redis()
    if client is None:
        return {}
    raw = cast("dict[bytes, bytes]", client.hgetall(_state_key(account_id, job_id, thread_id)))
    return {name.decode(): value.decode() for name, value in raw.items()}


def recorded_decision(account_id: str, job_id: str, thread_id: str) -> Decision | None:
    """The decision first recorded for the thread in this run, if any."""
    state = thread_state(account_id, job_id, thread_id)
    if "markDone" not in state:
        return None
    return Decision(state["markDone"] == "true", state["rule"], state["reason"])


def record_decision(
    account_id: str, job_id: str, thread_id: str, newest: MailMessage, decision: Decision
) -> Decision:
    """Record the decision unless one is recorded already; return the one recorded."""
    client = _redis()
    if client is None:
        return decision
    key = _state_key(account_id, job_id, thread_id)
    with client.pipeline(transaction=True) as pipe:
        # One transaction: the three decision fields are always written together, so
        # HSETNX on each keeps the first decision whole.
        pipe.hsetnx(key, "markDone", "true" if decision.mark_done else "false")
        pipe.hsetnx(key, "rule", decision.rule)
        pipe.hsetnx(key, "reason", decision.reason)
        pipe.hsetnx(key, "status", "applying")  # never back from "completed"
        pipe.hset(
            key,
            mapping={
                "threadId": thread_id,
                "jobId": job_id,
                "subject": newest.subject,
                "from": newest.sender,
                "date": newest.date.isoformat() if newest.date else "",
            },
        )
        pipe.expire(key, STATE_TTL_SECONDS)
        pipe.hmget(key, ["markDone", "rule", "reason"])
        results = pipe.execute()
    mark_done, rule, reason = (cast(bytes, value).decode() for value in results[-1])
    return Decision(mark_done == "true", rule, reason)


def set_status(account_id: str, job_id: str, thread_id: str, status: str) -> None:
    """Set the thread's status ("completed" once its cleaning is recorded)."""
    client = _redis()
    if client is None:
        return
    key = _state_key(account_id, job_id, thread_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, "status", status)
        pipe.expire(key, STATE_TTL_SECONDS)
        pipe.execute()
