"""SQLAlchemy models. Enum-like columns are strings checked by the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Enum, Index, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which drops the zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum: type[StrEnum], name: str) -> Enum:
    return Enum(enum, name=name, native_enum=False, length=20, values_callable=_values)


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class MailProviderKind(StrEnum):
    MAILDIR = "maildir"
    GOOGLE = "google"
    MICROSOFT = "microsoft"


class EmailAccount(Base):
    __tablename__ = "email_account"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    provider: Mapped[MailProviderKind] = mapped_column(_enum(MailProviderKind, "mail_provider"))
    provider_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActionType(StrEnum):
    ARCHIVE = "ARCHIVE"
    LABEL = "LABEL"
    REPLY = "REPLY"
    SEND_EMAIL = "SEND_EMAIL"
    FORWARD = "FORWARD"
    MARK_READ = "MARK_READ"
    MOVE_FOLDER = "MOVE_FOLDER"


class ActionStatus(StrEnum):
    PENDING = "PENDING"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class SchedulingStatus(StrEnum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    FAILED = "FAILED"


class ScheduledAction(Base):
    __tablename__ = "scheduled_action"
    __table_args__ = (
        Index("ix_scheduled_action_status_due", "status", "scheduled_for"),
        Index("ix_scheduled_action_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    executed_rule_id: Mapped[str | None] = mapped_column(String(64))
    email_account_id: Mapped[str] = mapped_column(String(64), index=True)
    action_type: Mapped[ActionType] = mapped_column(_enum(ActionType, "action_type"))
    message_id: Mapped[str] = mapped_column(String(255))
    thread_id: Mapped[str] = mapped_column(String(255))
    scheduled_for: Mapped[datetime]
    status: Mapped[ActionStatus] = mapped_column(
        _enum(ActionStatus, "action_status"), default=ActionStatus.PENDING
    )
    scheduling_status: Mapped[SchedulingStatus] = mapped_column(
        _enum(SchedulingStatus, "scheduling_status"), default=SchedulingStatus.PENDING
    )
    # Action fields
    label: Mapped[str | None] = mapped_column(String(255))
    label_id: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    to: Mapped[str | None] = mapped_column(Text)
    cc: Mapped[str | None] = mapped_column(Text)
    bcc: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    folder_name: Mapped[str | None] = mapped_column(String(255))
    folder_id: Mapped[str | None] = mapped_column(String(255))
    # Delivery bookkeeping
    scheduled_id: Mapped[str | None] = mapped_column(String(255))
    scheduled_provider: Mapped[str | None] = mapped_column(String(20))
    last_enqueued_at: Mapped[datetime | None]
    # The claim: which delivery (provider id and attempt) holds the row EXECUTING, until when.
    claimed_by: Mapped[str | None] = mapped_column(String(300))
    claim_attempt: Mapped[int | None]
    lease_expires_at: Mapped[datetime | None]
    executed_at: Mapped[datetime | None]
    executed_action_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeferredJob(Base):
    """A Celery job due beyond the ETA horizon, published by the release cron when near."""

    __tablename__ = "deferred_job"

    dedup_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]]
    due_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessedDelivery(Base):
    """Deliveries that reached a final outcome, so a redelivered message is not run again."""

    __tablename__ = "processed_delivery"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(20))
    finished_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
