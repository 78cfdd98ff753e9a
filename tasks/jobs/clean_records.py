"""The database side of inbox cleaning: the CleanupJob a run is, and the one
CleanupThread recorded per (job, thread) once its mailbox change is made.

The CleanupThread row is unique per (job, thread), so an IntegrityError on insert means
an earlier delivery recorded it; a job is COMPLETED once every page is queued and every
queued thread recorded.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bridge.outcome import PermanentError
from bridge.store.db import session_scope
from tasks.models import CleanupJob, CleanupJobStatus, CleanupThread


def cleanup_job(job_id: str, account_id: str) -> CleanupJob:
    """The run, checked to belong to the account; PermanentError if it does not."""
    with session_scope() as session:
        row = session.get(CleanupJob, job_id)
    if row is None:
        raise PermanentError(f"unknown cleanup job {job_id}")
    if row.email_account_id != account_id:
        raise PermanentError(f"cleanup job {job_id} belongs to another email account")
    return row


def recorded(job_id: str, thread_id: str) -> bool:
    """Whether the thread's CleanupThread exists: its cleaning is over."""
    with session_scope() as session:
        found = session.scalar(
            select(CleanupThread.id).where(
                CleanupThread.job_id == job_id, CleanupThread.thread_id == thread_id
            )
        )
    return found is not None


def record_once(
    job_id: str, account_id: str, thread_id: str, *, archived: bool, mark_done: bool
) -> bool:
    """Insert the thread's CleanupThread; False if an earlier delivery already had."""
    row = CleanupThread(
        job_id=job_id,
        email_account_id=account_id,
        thread_id=thread_id,
        archived=archived,
        mark_done=mark_done,
    )
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        # The unique (job_id, thread_id) says another delivery won; any other integrity
        # error (the job deleted meanwhile) is not ours to swallow.
        if recorded(job_id, thread_id):
            return False
        raise
    complete_if_done(job_id)
    return True


def complete_if_done(job_id: str) -> None:
    """RUNNING -> COMPLETED once every page is queued and every queued thread recorded."""
    cleaned = (
        select(func.count())
        .select_from(CleanupThread)
        .where(CleanupThread.job_id == job_id)
        .scalar_subquery()
    )
    with session_scope() as session:
        session.execute(
            update(CleanupJob)
            .where(
                CleanupJob.id == job_id,
                CleanupJob.status == CleanupJobStatus.RUNNING,
                CleanupJob.all_queued.is_(True),
                cleaned >= CleanupJob.threads_queued,
            )
            .values(status=CleanupJobStatus.COMPLETED)
        )


def cleaned_threads(job_id: str) -> list[CleanupThread]:
    """The run's CleanupThread rows, oldest first."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(CleanupThread)
                .where(CleanupThread.job_id == job_id)
                .order_by(CleanupThread.created_at)
            )
        )
