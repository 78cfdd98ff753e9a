"""The shim's own tables: the delivery ledger, deferred Celery jobs and seen QStash tokens.

They share the app's declarative base (one metadata, one set of migrations): an app
with Alembic migrations creates them beside its own tables; an app without migrations
calls `create_shim_tables` (only needed without REDIS_URL, or for deferred Celery jobs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, create_engine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import NullPool

from bridge.store.columns import EXTERNAL_LENGTH, Base, utcnow


class DeferredJob(Base):
    """A Celery job due beyond the ETA horizon, published by the release cron when near."""

    __tablename__ = "deferred_job"

    dedup_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH), primary_key=True)
    event: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]]
    due_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessedDelivery(Base):
    """Deliveries that reached a final outcome, so a redelivered message is not run again."""

    __tablename__ = "processed_delivery"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH), primary_key=True)
    event: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(20))
    finished_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SeenSignature(Base):
    """A QStash signature's token id (`jti`) and the message it came with, kept until the
    token expires: the same token a second time is a replay."""

    __tablename__ = "seen_signature"

    token_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    expires_at: Mapped[datetime] = mapped_column(index=True)


def create_shim_tables(url: str) -> None:
    """Create the shim's tables in the database at `url` where they are missing."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        names = (DeferredJob.__tablename__, ProcessedDelivery.__tablename__)
        tables = [Base.metadata.tables[name] for name in (*names, SeenSignature.__tablename__)]
        Base.metadata.create_all(engine, tables=tables, checkfirst=True)
    finally:
        engine.dispose()
