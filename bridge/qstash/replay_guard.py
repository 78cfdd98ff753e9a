"""QStash signatures are used once: a token id (`jti`) belongs to the message it first
came with until the token expires.

QStash signs each delivery attempt afresh, so a retry of the same message passes; a
captured request replayed under another `Upstash-Message-Id` (which would dodge the
delivery ledger) is refused. Kept in Redis when REDIS_URL is set (one SET NX GET with
the token's remaining life as TTL; the web app sends it with the ledger check:
bridge/web/deliveries.py), else in the `seen_signature` table (pruned by the sweep).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bridge.store import redis_store
from bridge.store.db import session_scope
from bridge.store.tables import SeenSignature
from config import get_settings

# Tokens are kept a little past their expiry, for clocks that disagree.
CLOCK_MARGIN_SECONDS = 60


def first_use(token_id: str, message_id: str, expires_at: datetime) -> bool:
    """True for the token's first message (on any delivery attempt of it); False when the
    token was already seen with another message."""
    if get_settings().redis_url:
        earlier = redis_store.client().set(
            token_key(token_id), message_id, nx=True, ex=ttl_seconds(expires_at), get=True
        )
        return came_with(earlier, message_id)
    with session_scope() as session:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(SeenSignature)
            .values(token_id=token_id, message_id=message_id, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["token_id"])
        )
        first = session.get(SeenSignature, token_id)
        return first is not None and first.message_id == message_id


def token_key(token_id: str) -> str:
    return redis_store.key(redis_store.SEEN_SIGNATURE, token_id)


def ttl_seconds(expires_at: datetime) -> int:
    """How long a token is remembered: its remaining life and the clock margin."""
    remaining = (expires_at - datetime.now(UTC)).total_seconds()
    return max(1, int(remaining) + CLOCK_MARGIN_SECONDS)


def came_with(earlier: object, message_id: str) -> bool:
    """Whether SET NX GET's answer (the token's earlier message, or None when the token is
    new) lets `message_id` use the token."""
    return earlier is None or earlier == message_id.encode()
