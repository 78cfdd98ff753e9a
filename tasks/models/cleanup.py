"""Inbox cleaning: a job per run, and one row per thread it handled."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.columns import EXTERNAL_LENGTH, ID_LENGTH, Base, new_id, string_enum, utcnow


class CleanAction(StrEnum):
    ARCHIVE = "ARCHIVE"
    MARK_READ = "MARK_READ"


class CleanupJobStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"  # its pages could not all be listed or queued; what was queued runs


class CleanupJob(Base):
    __tablename__ = "cleanup_job"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email_account_id: Mapped[str] = mapped_column(
        ForeignKey("email_account.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[CleanAction] = mapped_column(string_enum(CleanAction, "clean_action"))
    days_old: Mapped[int]
    instructions: Mapped[str | None] = mapped_column(Text)
    skips: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[CleanupJobStatus] = mapped_column(
        string_enum(CleanupJobStatus, "cleanup_job_status"), default=CleanupJobStatus.RUNNING
    )
    threads_queued: Mapped[int] = mapped_column(default=0)
    # Every page was queued: only then can cleaned threads complete the job.
    all_queued: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CleanupThread(Base):
    """Recorded once per (job, thread), however often its clean job is delivered."""

    __tablename__ = "cleanup_thread"
    __table_args__ = (UniqueConstraint("job_id", "thread_id"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("cleanup_job.id", ondelete="CASCADE"))
    email_account_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    thread_id: Mapped[str] = mapped_column(String(EXTERNAL_LENGTH))
    archived: Mapped[bool] = mapped_column(default=False)
    mark_done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
