"""Deliveries that reached a final outcome, by provider id: a redelivery is answered, not rerun."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tasks.db import session_scope
from tasks.models import ProcessedDelivery


def already_processed(provider: str, delivery_id: str) -> bool:
    with session_scope() as session:
        return session.get(ProcessedDelivery, (provider, delivery_id)) is not None


def record_processed(provider: str, delivery_id: str, event: str, outcome: str) -> None:
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
