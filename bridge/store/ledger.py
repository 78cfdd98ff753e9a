"""The delivery ledger: deliveries that reached a final outcome, by provider, job and
delivery id, so a redelivered message is answered rather than run again. The job is
part of the entry: a caller that sends two jobs under one delivery id has both run.

It is an optimisation on top of idempotent jobs, not what makes them safe, so it lives
where it is cheapest: Redis when REDIS_URL is set (a GET and a SET with a TTL), else
the database table `processed_delivery` (pruned by the sweep). The web app
checks it with the replay guard in one round trip: bridge/web/deliveries.py.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bridge.store import redis_store
from bridge.store.db import session_scope
from bridge.store.tables import ProcessedDelivery
from config import get_settings

RETENTION = timedelta(days=14)  # longer than QStash retries a message (days at most)
RETENTION_SECONDS = int(RETENTION.total_seconds())


def already_processed(provider: str, delivery_id: str, event: str) -> bool:
    if get_settings().redis_url:
        return bool(redis_store.client().exists(ledger_key(provider, delivery_id, event)))
    with session_scope() as session:
        row = session.get(ProcessedDelivery, (provider, delivery_id))
        return row is not None and row.event == event


def record_processed(provider: str, delivery_id: str, event: str, outcome: str) -> None:
    if get_settings().redis_url:
        redis_store.client().set(
            *_redis_entry(provider, delivery_id, event, outcome), ex=RETENTION_SECONDS
        )
        return
    try:
        with session_scope() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Not worth a wait for the disk: losing this row in a crash only lets an
                # idempotent job run once more.
                session.execute(text("SET LOCAL synchronous_commit = off"))
            session.add(
                ProcessedDelivery(
                    provider=provider, delivery_id=delivery_id, event=event, outcome=outcome
                )
            )
    except IntegrityError:
        # A concurrent duplicate recorded it first; or another job under the same id
        # did, whose row (the table's key has no job) this one leaves alone: unrecorded,
        # a redelivery of it runs again, as an idempotent job may.
        pass


async def record_processed_from_loop(
    provider: str, delivery_id: str, event: str, outcome: str
) -> None:
    """`record_processed` in Redis, from the running event loop (REDIS_URL is set)."""
    await redis_store.on_loop(
        ("SET", *_redis_entry(provider, delivery_id, event, outcome), "EX", RETENTION_SECONDS)
    )


def _redis_entry(provider: str, delivery_id: str, event: str, outcome: str) -> tuple[str, str]:
    """The delivery's key in Redis and what it holds."""
    return ledger_key(provider, delivery_id, event), ledger_entry(event, outcome)


def ledger_key(provider: str, delivery_id: str, event: str) -> str:
    return redis_store.key(redis_store.DELIVERED, provider, ":", event, ":", delivery_id)


def ledger_entry(event: str, outcome: str) -> str:
    return f"{event} {outcome}"
