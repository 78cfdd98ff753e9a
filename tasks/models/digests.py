"""Digests: items collected per account, sent as one email on the account's schedule."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
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


class DigestStatus(StrEnum):
    PENDING = "PENDING"  # collecting items
    PROCESSING = "PROCESSING"  # claimed by a sender until lease_expires_at
    SENT = "SENT"
    FAILED = "FAILED"


class Digest(Base):
    __tablename__ = "digest"
    __table_args__ = (Index("ix_digest_account_status", "email_account_id", "status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE")
    )
    status: Mapped[DigestStatus] = mapped_column(
        string_enum(DigestStatus, "digest_status"), default=DigestStatus.PENDING
    )
    lease_expires_at: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))  # the current sender's
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DigestItem(Base):
    __tablename__ = "digest_item"
    __table_args__ = (UniqueConstraint("digest_id", "thread_id", "message_id"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    digest_id: Mapped[str] = mapped_column(ForeignKey("digest.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    thread_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    action_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    cold_email_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    rule_name: Mapped[str | None] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    subject: Mapped[str] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)  # redacted (None) once sent
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
