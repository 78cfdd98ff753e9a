"""Deliveries that reached a final outcome, by provider id: a redelivery is answered, not rerun."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from tasks.db import session_scope
from tasks.models import ProcessedDelivery


def already_processed(provider: str, delivery_id: str) -> bool:
    with session_scope() as session:
        return session.get(ProcessedDelivery, (provider, delivery_id)) is not None


def record_processed(provider: str, delivery_id: str, event: str, outcome: str) -> None:
    try:
        with session_scope() as session:
            session.add(
                ProcessedDelivery(
                    provider=provider, delivery_id=delivery_id, event=event, outcome=outcome
                )
            )
    except IntegrityError:
        pass  # a concurrent duplicate recorded it first
