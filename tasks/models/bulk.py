"""Bulk processing: one job per run over a date window, and each message it counted."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.columns import EXTERNAL_LENGTH, ID_LENGTH, Base, new_id, string_enum, utcnow


class BulkJobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


OPEN_BULK_STATUSES = (BulkJobStatus.PENDING, BulkJobStatus.RUNNING)


class BulkProcessJob(Base):
    __tablename__ = "bulk_process_job"
    __table_args__ = (
        # At most one open job per account, enforced by the database (409 on start).
        Index(
            "uq_bulk_process_job_open_per_account",
            "email_account_id",
            unique=True,
            postgresql_where=text("status IN ('PENDING', 'RUNNING')"),
            sqlite_where=text("status IN ('PENDING', 'RUNNING')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[BulkJobStatus] = mapped_column(
        string_enum(BulkJobStatus, "bulk_job_status"), default=BulkJobStatus.PENDING
    )
    start_date: Mapped[datetime]
    end_date: Mapped[datetime | None]
    only_unread: Mapped[bool] = mapped_column(default=True)
    # Apply the rules again to messages that already have a result.
    force_reprocess: Mapped[bool] = mapped_column(default=False, server_default=false())
    total_emails: Mapped[int] = mapped_column(default=0)
    emails_queued: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    pages_fetched: Mapped[int] = mapped_column(default=0)
    next_page_token: Mapped[str | None] = mapped_column(Text)  # of the last page fetched
    # The last page was fetched: only then may counts complete the job.
    all_queued: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


class BulkItemStatus(StrEnum):
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class BulkProcessItem(Base):
    """A message's final count in a job: the row is inserted once, so counts are too."""

    __tablename__ = "bulk_process_item"
    __table_args__ = (UniqueConstraint("job_id", "message_id"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("bulk_process_job.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    status: Mapped[BulkItemStatus] = mapped_column(string_enum(BulkItemStatus, "bulk_item_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
