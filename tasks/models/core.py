"""Accounts and scheduled actions. Enum-like columns are strings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Index, String, Text, and_
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.columns import (
    ADDRESS_LENGTH,
    EXTERNAL_LENGTH,
    ID_LENGTH,
    Base,
    new_id,
    string_enum,
    utcnow,
)


class MailProviderKind(StrEnum):
    MAILDIR = "maildir"
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    IMAP = "imap"  # any standards mailbox: IMAP to read and act, SMTP to send


class SummaryFrequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"


class EmailAccount(Base):
    __tablename__ = "email_account"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), unique=True)
    provider: Mapped[MailProviderKind] = mapped_column(
        string_enum(MailProviderKind, "mail_provider")
    )
    provider_settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Why the mailbox cannot be opened until the person connects it again (its provider
    # refused the refresh token); None while it works. `accounts connect` clears it.
    connection_error: Mapped[str | None] = mapped_column(Text)
    # Digest schedule: every N days from digest_next_at (None = no digest emails).
    digest_interval_days: Mapped[int | None]
    digest_next_at: Mapped[datetime | None]
    # Summary emails: DAILY or WEEKLY (None = none), and when the last one went out.
    summary_frequency: Mapped[SummaryFrequency | None] = mapped_column(
        string_enum(SummaryFrequency, "summary_frequency")
    )
    last_summary_at: Mapped[datetime | None]
    # A random token the database changes on every change to the account's rules or
    # their actions (triggers, migration 0008): a process keeps the rules it read while
    # the token it read them with holds (tasks/rules/cache.py).
    rules_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
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
        # The status page: executions per minute and failures, over the last hours.
        Index("ix_scheduled_action_executed", "status", "executed_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    executed_rule_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    email_account_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    action_type: Mapped[ActionType] = mapped_column(string_enum(ActionType, "action_type"))
    message_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    thread_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    scheduled_for: Mapped[datetime]
    status: Mapped[ActionStatus] = mapped_column(
        string_enum(ActionStatus, "action_status"), default=ActionStatus.PENDING
    )
    scheduling_status: Mapped[SchedulingStatus] = mapped_column(
        string_enum(SchedulingStatus, "scheduling_status"), default=SchedulingStatus.PENDING
    )
    # Action fields
    label: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    label_id: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    subject: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    to: Mapped[str | None] = mapped_column(Text)
    cc: Mapped[str | None] = mapped_column(Text)
    bcc: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    folder_name: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    folder_id: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    # Delivery bookkeeping
    scheduled_id: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    scheduled_provider: Mapped[str | None] = mapped_column(String(20))
    last_enqueued_at: Mapped[datetime | None]
    # The claim: which delivery (provider id and attempt) holds the row EXECUTING, until when.
    claimed_by: Mapped[str | None] = mapped_column(String(300))
    claim_attempt: Mapped[int | None]
    # The provider whose delivery last claimed the row ("inngest", "qstash", "celery",
    # "http"): once the row is COMPLETED or FAILED, the one that ran it. Only the current
    # claim may finish a row, so the claim's provider is the finisher's. NULL: never run
    # (or finished before this column existed).
    executed_provider: Mapped[str | None] = mapped_column(String(20))
    # A fresh token per claim: only the holder of the current claim may finish the row.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    execution_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None]
    executed_at: Mapped[datetime | None]
    executed_action_id: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @classmethod
    def claim_lapsed(cls, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
        """An EXECUTING row whose claim's lease ran out before `now`: its holder is
        taken to be gone, so a delivery or the sweep may take the row over."""
        return and_(cls.status == ActionStatus.EXECUTING, cls.lease_expires_at < now)
