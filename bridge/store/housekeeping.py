"""Pruning the shim's database bookkeeping once it can no longer matter."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bridge.qstash.replay_guard import CLOCK_MARGIN_SECONDS
from bridge.store.db import rows_changed
from bridge.store.ledger import RETENTION
from bridge.store.tables import ProcessedDelivery, SeenSignature


def prune_expired(session: Session, now: datetime) -> int:
    """Delete ledger entries past their retention and QStash tokens past their expiry
    (used only without Redis, where both expire by themselves); return how many."""
    deliveries = rows_changed(
        session, delete(ProcessedDelivery).where(ProcessedDelivery.finished_at < now - RETENTION)
    )
    tokens = rows_changed(
        session,
        delete(SeenSignature).where(
            SeenSignature.expires_at < now - timedelta(seconds=CLOCK_MARGIN_SECONDS)
        ),
    )
    return deliveries + tokens
