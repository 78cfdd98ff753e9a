"""QStash signatures are used once: a token id (`jti`) serves one request until the
token expires.

QStash signs each delivery attempt afresh, so a retry of the same message passes. A
captured request sent again is refused, whatever it says around the signed body: under
another `Upstash-Message-Id` it would dodge the delivery ledger, and with a higher
`Upstash-Retried` (not signed either) it would pass for the last attempt and fail the
job for good. Kept in Redis when REDIS_URL is set (one SET NX with the token's
remaining life as TTL; the web app sends it with the ledger check:
bridge/web/deliveries.py), else in the `seen_signature` table (pruned by the sweep).
The message id is kept beside the token, for whoever reads the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult

from bridge.store import redis_store
from bridge.store.db import insert_ignoring_conflicts, session_scope
from bridge.store.tables import SeenSignature
from config import get_settings

# Tokens are kept a little past their expiry, for clocks that disagree.
CLOCK_MARGIN_SECONDS = 60


def first_use(token_id: str, message_id: str, expires_at: datetime) -> bool:
    """True the first time the token is seen; False on any later request with it."""
    if get_settings().redis_url:
        command = first_use_command(token_id, message_id, expires_at)
        return is_first(redis_store.client().execute_command(*command))  # type: ignore[no-untyped-call]
    with session_scope() as session:
        dialect = session.get_bind().dialect.name
        inserted = session.execute(
            insert_ignoring_conflicts(SeenSignature, dialect, ["token_id"]).values(
                token_id=token_id, message_id=message_id, expires_at=expires_at
            ),
            # An INSERT's row count is kept only when asked for (no RETURNING: SQLite
            # before 3.35 has none).
            execution_options={"preserve_rowcount": True},
        )
        return cast("CursorResult[Any]", inserted).rowcount == 1  # 0: kept already


def token_key(token_id: str) -> str:
    return redis_store.key(redis_store.SEEN_SIGNATURE, token_id)


def ttl_seconds(expires_at: datetime) -> int:
    """How long a token is remembered: its remaining life and the clock margin."""
    remaining = (expires_at - datetime.now(UTC)).total_seconds()
    return max(1, int(remaining) + CLOCK_MARGIN_SECONDS)


def first_use_command(token_id: str, message_id: str, expires_at: datetime) -> redis_store.Command:
    """`first_use` in Redis as one command, alone or in a pipeline (its reply: `is_first`)."""
    return ("SET", token_key(token_id), message_id, "NX", "EX", ttl_seconds(expires_at))


def is_first(answer: object) -> bool:
    """Whether SET NX's answer says the token was new (True; None when it was kept)."""
    return answer is True
