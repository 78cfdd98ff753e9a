"""Rows of the delivery ledger's table for the one-row read tests, and the read of one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, select

from bridge.store import db
from bridge.store.tables import ProcessedDelivery

BY_ID = select(ProcessedDelivery.outcome, ProcessedDelivery.finished_at).where(
    ProcessedDelivery.delivery_id == bindparam("id")
)
FINISHED = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def record(delivery_id: str, finished_at: datetime = FINISHED) -> None:
    """A delivery done at `finished_at`."""
    with db.session_scope() as session:
        session.add(
            ProcessedDelivery(
                provider="qstash",
                delivery_id=delivery_id,
                event="e",
                outcome="done",
                finished_at=finished_at,
            )
        )
