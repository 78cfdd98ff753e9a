"""The database side of bulk processing (`bulk_process`): what a page filters on, and how
a worker reads its run and counts its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    case,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from bridge.outcome import PermanentError
from bridge.store.db import autocommit, engine, read_scope, session_scope
from tasks.models import (
    OPEN_BULK_STATUSES,
    BulkItemStatus,
    BulkJobStatus,
    BulkProcessItem,
    BulkProcessJob,
    EmailAccount,
    ExecutedRule,
    Sender,
    SenderStatus,
    new_id,
    utcnow,
)
from tasks.rules.apply import rule_result_exists


def ignored_senders(account_id: str) -> set[str]:
    with read_scope() as session:
        return set(
            session.scalars(
                select(Sender.email).where(
                    Sender.email_account_id == account_id, Sender.status == SenderStatus.IGNORED
                )
            )
        )


def with_rule_result(account_id: str, message_ids: list[str], before: datetime) -> set[str]:
    """Those of the messages that had a rule result before `before` (one query for a
    page): a run's own results are not "handled before" to it."""
    if not message_ids:
        return set()
    with read_scope() as session:
        return set(
            session.scalars(
                select(ExecutedRule.message_id).where(
                    ExecutedRule.email_account_id == account_id,
                    ExecutedRule.message_id.in_(message_ids),
                    ExecutedRule.created_at < before,
                )
            )
        )


def counted_in_run(job_id: str, message_ids: list[str]) -> set[str]:
    """Those of the messages the run has counted (one query for a page)."""
    if not message_ids:
        return set()
    with read_scope() as session:
        return set(
            session.scalars(
                select(BulkProcessItem.message_id).where(
                    BulkProcessItem.job_id == job_id, BulkProcessItem.message_id.in_(message_ids)
                )
            )
        )


@dataclass(frozen=True)
class WorkerRead:
    """What a worker reads before its message: its run's state and the account (None:
    unknown)."""

    status: BulkJobStatus
    force_reprocess: bool  # the run's
    account: EmailAccount | None
    has_rule_result: bool  # the message has one already


def worker_read(job_id: str, account_id: str, message_id: str) -> WorkerRead:
    """One statement, no transaction, for what `job_or_fail`, `mailbox_of` and
    `apply_rules` would each read in one of their own: the run's status and options, the
    account, and whether the message has a rule result. The account's rules version
    comes with it, so its rules are read only when they changed (`tasks.rules.cache`)."""
    values = {"job_id": job_id, "account_id": account_id, "message_id": message_id}
    with read_scope() as session:
        found = session.execute(_worker_statement(), values).first()
    if found is None:
        raise PermanentError(f"unknown bulk job {job_id}")
    status, force_reprocess, account, has_rule_result = found
    return WorkerRead(status, force_reprocess, account, bool(has_rule_result))


# Built once, like the count's statements below: building it for each message cost
# more CPU than running it. Its parameters: job_id, account_id, message_id. The run's
# columns, not the whole row: loading an ORM object costs more than the query.
@lru_cache(maxsize=1)
def _worker_statement() -> Select[BulkJobStatus, bool, EmailAccount, bool]:
    account_id: BindParameter[str] = bindparam("account_id")
    return (
        select(
            BulkProcessJob.status,
            BulkProcessJob.force_reprocess,
            EmailAccount,
            rule_result_exists(account_id, bindparam("message_id")),
        )
        .outerjoin(EmailAccount, EmailAccount.id == account_id)
        .where(BulkProcessJob.id == bindparam("job_id"))
    )


def counted(job_id: str, message_id: str) -> bool:
    return bool(counted_in_run(job_id, [message_id]))


def count(job_id: str, message_id: str, status: BulkItemStatus) -> None:
    """Count the message once (the item row is unique) and, in the same update, complete
    the job when this was its last message (the update sees the counts as committed
    by every other worker: it waits for their row lock)."""
    values = {
        "job_id": job_id,
        "message_id": message_id,
        "item_id": new_id(),
        "now": utcnow(),
        "item_status": status,
    }
    failed = status is BulkItemStatus.FAILED
    try:
        if engine().dialect.name == "postgresql":
            with autocommit() as connection:
                connection.execute(_count_in_one_statement(failed), values)
            return
        item, tally = _count_statements(failed)
        with session_scope() as session:
            session.execute(item, values)
            session.execute(tally, values)
    except IntegrityError:
        return  # counted by an earlier delivery, or the run has been deleted since


# Built once per kind of count: a statement made anew for each message cost more CPU
# than running it. Their parameters: job_id, message_id, item_id, now, item_status.
@lru_cache(maxsize=2)
def _count_statements(failed: bool) -> tuple[Insert, Update]:
    """The item's insert (fails on a counted message) and the job's update."""
    return insert(BulkProcessItem).values(_item_columns()), _tally(failed)


@lru_cache(maxsize=2)
def _count_in_one_statement(failed: bool) -> Update:
    """PostgreSQL: the item inserted in a CTE, the job's counts updated only when the
    item was new. One statement: one round trip, and no transaction around it."""
    new_item = (
        pg_insert(BulkProcessItem)
        .values(_item_columns())
        .on_conflict_do_nothing()
        .returning(BulkProcessItem.job_id)
        .cte("new_item")
    )
    return _tally(failed).where(BulkProcessJob.id.in_(select(new_item.c.job_id)))


def _item_columns() -> dict[str, Any]:
    """The item row's values, as parameters of the statements above."""
    return {
        "id": bindparam("item_id"),
        "job_id": bindparam("job_id"),
        "message_id": bindparam("message_id"),
        "status": bindparam("item_status", type_=BulkProcessItem.status.type),
        "created_at": bindparam("now", type_=BulkProcessItem.created_at.type),
    }


def _tally(failed: bool) -> Update:
    """The job's update for one counted message (job_id, now): its count, and COMPLETED
    when it was the last one."""
    column = BulkProcessJob.failed if failed else BulkProcessJob.processed
    last = and_(
        BulkProcessJob.status == BulkJobStatus.RUNNING,
        BulkProcessJob.all_queued.is_(True),
        BulkProcessJob.processed + BulkProcessJob.failed + 1 >= BulkProcessJob.emails_queued,
    )
    completed = literal(BulkJobStatus.COMPLETED, BulkProcessJob.status.type)
    now = bindparam("now", type_=BulkProcessJob.completed_at.type)
    return (
        update(BulkProcessJob)
        .where(BulkProcessJob.id == bindparam("job_id"))
        .values(
            {
                column.key: column + 1,
                "status": case((last, completed), else_=BulkProcessJob.status),
                "completed_at": case((last, now), else_=BulkProcessJob.completed_at),
            }
        )
    )


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


class FetchedPage(Protocol):
    """What a fetcher message names: its run and its page."""

    @property
    def job_id(self) -> str: ...

    @property
    def page(self) -> int: ...


def fail_run(payload: FetchedPage, error: str) -> None:
    """The fetcher's on_failure hook: the page the run waits on (the one after those
    counted) that failed for good (its retries used up, or a permanent failure) ends its
    open run as FAILED with the error: no page after it would be listed, so the run could
    never complete, and an open run blocks the account's next one. A copy published
    ahead that gave up waiting for the page before is not that page: the page before's
    retry publishes it again."""
    with session_scope() as session:
        session.execute(
            update(BulkProcessJob)
            .where(
                BulkProcessJob.id == payload.job_id,
                BulkProcessJob.status.in_(OPEN_BULK_STATUSES),
                BulkProcessJob.pages_fetched == payload.page,
            )
            .values(
                status=BulkJobStatus.FAILED,
                error=f"page {payload.page}: {error}",
                completed_at=utcnow(),
            )
        )
