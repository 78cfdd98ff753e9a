"""Sender categories and the senders an account hears from."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.columns import ADDRESS_LENGTH, ID_LENGTH, Base, new_id, string_enum, utcnow

CATEGORY_LENGTH = 100  # a sender category's name


class Category(Base):
    __tablename__ = "category"
    __table_args__ = (UniqueConstraint("email_account_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SenderStatus(StrEnum):
    NONE = "NONE"
    IGNORED = "IGNORED"  # bulk processing leaves their mail alone
    UNSUBSCRIBED = "UNSUBSCRIBED"


class Sender(Base):
    __tablename__ = "sender"
    __table_args__ = (UniqueConstraint("email_account_id", "email"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    category_id: Mapped[str | None] = mapped_column(ForeignKey("category.id", ondelete="SET NULL"))
    status: Mapped[SenderStatus] = mapped_column(
        string_enum(SenderStatus, "sender_status"), default=SenderStatus.NONE
    )
    categorized_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
