"""The database side of bulk processing (`bulk_process`): what a page filters on, and how
a worker reads its run and counts its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import and_, case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from bridge.outcome import PermanentError
from bridge.store.db import session_scope
from tasks.models import (
    BulkItemStatus,
    BulkJobStatus,
    BulkProcessItem,
    BulkProcessJob,
    EmailAccount,
    ExecutedRule,
    Rule,
    Sender,
    SenderStatus,
    utcnow,
)


def ignored_senders(account_id: str) -> set[str]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(Sender.email).where(
                    Sender.email_account_id == account_id, Sender.status == SenderStatus.IGNORED
                )
            )
        )


def with_rule_result(account_id: str, message_ids: list[str]) -> set[str]:
    """Those of the messages that have a rule result (one query for a page)."""
    if not message_ids:
        return set()
    with session_scope() as session:
        return set(
            session.scalars(
                select(ExecutedRule.message_id).where(
                    ExecutedRule.email_account_id == account_id,
                    ExecutedRule.message_id.in_(message_ids),
                )
            )
        )


def counted_in_run(job_id: str, message_ids: list[str]) -> set[str]:
    """Those of the messages the run has counted (one query for a page)."""
    if not message_ids:
        return set()
    with session_scope() as session:
        return set(
            session.scalars(
                select(BulkProcessItem.message_id).where(
                    BulkProcessItem.job_id == job_id, BulkProcessItem.message_id.in_(message_ids)
                )
            )
        )


@dataclass(frozen=True)
class WorkerRead:
    """What a worker reads before its message: the run, the account (None: unknown) and
    the account's enabled rules with their actions."""

    job: BulkProcessJob
    account: EmailAccount | None
    rules: list[Rule]


def worker_read(job_id: str, account_id: str) -> WorkerRead:
    """One transaction for what `job_or_fail`, `mailbox_of` and `apply_rules` would each
    read in one of their own; the rules as `tasks.rules.apply.account_rules` reads them."""
    with session_scope() as session:
        job = session.get(BulkProcessJob, job_id)
        if job is None:
            raise PermanentError(f"unknown bulk job {job_id}")
        account = session.get(EmailAccount, account_id)
        rules = list(
            session.scalars(
                select(Rule)
                .where(Rule.email_account_id == account_id, Rule.enabled.is_(True))
                .options(selectinload(Rule.actions))
            )
        )
    return WorkerRead(job, account, rules)


def counted(job_id: str, message_id: str) -> bool:
    return bool(counted_in_run(job_id, [message_id]))


def count(job_id: str, message_id: str, status: BulkItemStatus) -> None:
    """Count the message once (the item row is unique) and, in the same update, complete
    the job when this was its last message (the update sees the counts as committed
    by every other worker: it waits for their row lock)."""
    column = BulkProcessJob.failed if status is BulkItemStatus.FAILED else BulkProcessJob.processed
    last = and_(
        BulkProcessJob.status == BulkJobStatus.RUNNING,
        BulkProcessJob.all_queued.is_(True),
        BulkProcessJob.processed + BulkProcessJob.failed + 1 >= BulkProcessJob.emails_queued,
    )
    completed = literal(BulkJobStatus.COMPLETED, BulkProcessJob.status.type)
    try:
        with session_scope() as session:
            session.execute(
                insert(BulkProcessItem).values(job_id=job_id, message_id=message_id, status=status)
            )
            session.execute(
                update(BulkProcessJob)
                .where(BulkProcessJob.id == job_id)
                .values(
                    {
                        column.key: column + 1,
                        "status": case((last, completed), else_=BulkProcessJob.status),
                        "completed_at": case(
                            (last, literal(utcnow(), BulkProcessJob.completed_at.type)),
                            else_=BulkProcessJob.completed_at,
                        ),
                    }
                )
            )
    except IntegrityError:
        return  # counted by an earlier delivery


def complete_if_done(job_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(BulkProcessJob)
            .where(
                BulkProcessJob.id == job_id,
                BulkProcessJob.status == BulkJobStatus.RUNNING,
                BulkProcessJob.all_queued.is_(True),
                BulkProcessJob.processed + BulkProcessJob.failed >= BulkProcessJob.emails_queued,
            )
            .values(status=BulkJobStatus.COMPLETED, completed_at=utcnow())
        )


class CountedMessage(Protocol):
    """What a worker message names: its run and its message."""

    @property
    def job_id(self) -> str: ...

    @property
    def message_id(self) -> str: ...


def count_failed(payload: CountedMessage, error: str) -> None:
    """The worker's on_failure hook: a message whose delivery failed for good (a
    permanent failure, or its last attempt failed, a time limit included) is counted as
    failed, so that the run completes. Once, like every count: the item row is unique,
    so a message the body counted already (processed, or failed on a PermanentError) is
    left as it was."""
    count(payload.job_id, payload.message_id, BulkItemStatus.FAILED)
