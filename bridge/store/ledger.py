"""The delivery ledger: deliveries that reached a final outcome, by provider id, so a
redelivered message is answered rather than run again.

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


def already_processed(provider: str, delivery_id: str) -> bool:
    if get_settings().redis_url:
        return bool(redis_store.client().exists(ledger_key(provider, delivery_id)))
    with session_scope() as session:
        return session.get(ProcessedDelivery, (provider, delivery_id)) is not None


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
        pass  # a concurrent duplicate recorded it first


async def record_processed_from_loop(
    provider: str, delivery_id: str, event: str, outcome: str
) -> None:
    """`record_processed` in Redis, from the running event loop (REDIS_URL is set)."""
    await redis_store.loop_client().set(
        *_redis_entry(provider, delivery_id, event, outcome), ex=RETENTION_SECONDS
    )


def _redis_entry(provider: str, delivery_id: str, event: str, outcome: str) -> tuple[str, str]:
    """The delivery's key in Redis and what it holds."""
    return ledger_key(provider, delivery_id), ledger_entry(event, outcome)


def ledger_key(provider: str, delivery_id: str) -> str:
    return redis_store.key(redis_store.DELIVERED, provider, ":", delivery_id)


def ledger_entry(event: str, outcome: str) -> str:
    return f"{event} {outcome}"
