"""The record that makes a digest or a summary sent through SMTP_URL or Resend go out
once (tasks/mail/send_once.py): one row per idempotency key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.columns import EXTERNAL_LENGTH, Base, utcnow


class SentMail(Base):
    """Claimed by one sender (token and lease) while it sends; sent once `sent_at` is set."""

    __tablename__ = "sent_mail"

    idempotency_key: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH), primary_key=True)
    transport: Mapped[str] = mapped_column(String(20))  # resend or smtp
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None]
    # Resend's id of the email, or the Message-ID the SMTP server accepted.
    provider_id: Mapped[str | None] = mapped_column(String(EXTERNAL_LENGTH))
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
