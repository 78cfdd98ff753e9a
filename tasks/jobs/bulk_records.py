"""The database side of bulk processing (`bulk_process`): what a page filters on, and how
a worker reads its run and counts its message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    ScalarSelect,
    Update,
    and_,
    case,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from bridge.store.db import engine, insert_ignoring_conflicts, read_scope, session_scope
from bridge.store.key_lists import found, keys_table
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


@dataclass(frozen=True)
class PageRead:
    """What a fetcher page reads before it lists: its run (None: unknown), the account
    (None: unknown) and the senders the account ignores."""

    run: BulkProcessJob | None
    account: EmailAccount | None
    ignored_senders: set[str]


def page_read(job_id: str, account_id: str) -> PageRead:
    """One statement, no transaction: the run, the account and its ignored senders (in
    one row: aggregated, so that the account's row is not repeated for each)."""
    with read_scope() as session:
        senders = _ignored_senders(account_id, session.get_bind().dialect.name)
        statement = (
            select(BulkProcessJob, EmailAccount, senders)
            .select_from(BulkProcessJob)
            .outerjoin(EmailAccount, EmailAccount.id == account_id)
            .where(BulkProcessJob.id == job_id)
        )
        row = session.execute(statement).one_or_none()
    if row is None:
        return PageRead(None, None, set())
    run, account, addresses = row
    if isinstance(addresses, str):  # SQLite's JSON array
        addresses = json.loads(addresses)
    return PageRead(run, account, set(addresses or ()))


def _ignored_senders(account_id: str, dialect: str) -> ScalarSelect[Any]:
    """The account's ignored senders as one value: an array on PostgreSQL (NULL for
    none), a JSON array on SQLite."""
    email = Sender.email
    addresses = func.array_agg(email) if dialect == "postgresql" else func.json_group_array(email)
    return (
        select(addresses)
        .where(Sender.email_account_id == account_id, Sender.status == SenderStatus.IGNORED)
        .scalar_subquery()
    )


def handled_or_counted(
    account_id: str, job_id: str, message_ids: list[str], handled_before: datetime | None
) -> tuple[set[str], set[str]]:
    """Those of a page's messages that had a rule result before `handled_before` (a
    run's own results are not "handled before" to it; None: not asked), and those the
    run has counted: one statement for both, a row a message (`key_lists`)."""
    if not message_ids:
        return set(), set()
    handled: set[str] = set()
    counted: set[str] = set()
    with read_scope() as session:
        wanted = keys_table(message_ids, session.get_bind().dialect.name)
        result = (
            literal(None)
            if handled_before is None
            else _has_result(account_id, wanted.key, ExecutedRule.created_at < handled_before)
        )
        statement = select(wanted.key, _is_counted(job_id, wanted.key), result).select_from(
            wanted.table
        )
        for message_id, is_counted, has_result in session.execute(statement):
            if is_counted:
                counted.add(message_id)
            if has_result:
                handled.add(message_id)
    return handled, counted


def counted_in_run(job_id: str, message_ids: list[str]) -> set[str]:
    """Those of the messages the run has counted (one query for a page)."""
    if not message_ids:
        return set()
    with read_scope() as session:
        wanted = keys_table(message_ids, session.get_bind().dialect.name)
        statement = (
            select(wanted.key)
            .select_from(wanted.table)
            .where(_is_counted(job_id, wanted.key).is_not(None))
        )
        return set(session.scalars(statement))


def _is_counted(job_id: str, message_id: ColumnElement[Any]) -> ScalarSelect[Any]:
    """True when the run has counted the message (its count row), else NULL."""
    return found(BulkProcessItem.job_id == job_id, BulkProcessItem.message_id == message_id)


def _has_result(
    account_id: str, message_id: ColumnElement[Any], *also: ColumnElement[bool]
) -> ScalarSelect[Any]:
    """True when the message has a rule result (that meets `also`), else NULL."""
    return found(
        ExecutedRule.email_account_id == account_id, ExecutedRule.message_id == message_id, *also
    )


@dataclass(frozen=True)
class WorkerRead:
    """What a batch of workers reads before its messages: their runs' status and
    options, the account (None: unknown), and which messages have a rule result."""

    runs: dict[str, tuple[BulkJobStatus, bool]]  # job id -> (status, force_reprocess)
    account: EmailAccount | None
    with_rule_result: set[str]  # of the messages asked about


def worker_read(job_ids: set[str], account_id: str, message_ids: list[str]) -> WorkerRead:
    """One statement, no transaction, for what would otherwise be three reads: each
    run's status and options, the account, and whether each message has a rule result,
    one row per run and message (`key_lists`). The account's rules version comes with
    it, so its rules are read only when they changed (`tasks.rules.cache`)."""
    runs: dict[str, tuple[BulkJobStatus, bool]] = {}
    account: EmailAccount | None = None
    handled: set[str] = set()
    with read_scope() as session:
        wanted = keys_table(message_ids, session.get_bind().dialect.name)
        statement = (
            select(
                BulkProcessJob.id,
                BulkProcessJob.status,
                BulkProcessJob.force_reprocess,
                EmailAccount,
                wanted.key,
                _has_result(account_id, wanted.key),
            )
            .select_from(BulkProcessJob)
            .outerjoin(wanted.table, true())  # no messages: still the runs and account
            .outerjoin(EmailAccount, EmailAccount.id == account_id)
            .where(BulkProcessJob.id.in_(job_ids))
        )
        for job_id, status, force_reprocess, found, message_id, has_result in session.execute(
            statement
        ):
            runs[job_id] = (status, force_reprocess)
            account = found
            if has_result:
                handled.add(message_id)
    return WorkerRead(runs, account, handled)


def count(job_id: str, message_id: str, status: BulkItemStatus) -> None:
    count_many(job_id, {message_id: status})


def count_many(job_id: str, items: Mapping[str, BulkItemStatus]) -> None:
    """Count each message once, in a transaction of its own (`add_counts`); nothing
    when the run has been deleted since."""
    if not items:
        return
    try:
        with engine().begin() as connection:
            add_counts(connection, job_id, items)
    except IntegrityError:
        return  # the run has been deleted since


def add_counts(connection: Connection, job_id: str, items: Mapping[str, BulkItemStatus]) -> None:
    """Count each message once (its item row is unique) and, in the caller's
    transaction, add the new ones to the run's counts and complete the run when they
    were its last (the update sees the counts as committed by every other worker: it
    waits for their row lock). The rows go as one executemany, which SQLAlchemy sends as
    one INSERT and compiles once; a multi-row VALUES would be compiled anew for every
    call. IntegrityError when the run has been deleted."""
    if not items:
        return
    now = utcnow()
    rows = [
        {"id": new_id(), "job_id": job_id, "message_id": m, "status": s, "created_at": now}
        for m, s in items.items()
    ]
    statement = insert_ignoring_conflicts(BulkProcessItem, connection.dialect.name).returning(
        BulkProcessItem.status
    )
    added = connection.execute(statement, rows).scalars().all()
    failures = sum(1 for status in added if status is BulkItemStatus.FAILED)
    if added:
        connection.execute(_tally(job_id, len(added) - failures, failures, now))


def _tally(job_id: str, fine: int, failed: int, now: datetime) -> Update:
    """The run's update for newly counted messages: its counts, and COMPLETED when they
    were its last."""
    last = and_(
        BulkProcessJob.status == BulkJobStatus.RUNNING,
        BulkProcessJob.all_queued.is_(True),
        BulkProcessJob.processed + BulkProcessJob.failed + fine + failed
        >= BulkProcessJob.emails_queued,
    )
    completed = literal(BulkJobStatus.COMPLETED, BulkProcessJob.status.type)
    return (
        update(BulkProcessJob)
        .where(BulkProcessJob.id == job_id)
        .values(
            processed=BulkProcessJob.processed + fine,
            failed=BulkProcessJob.failed + failed,
            status=case((last, completed), else_=BulkProcessJob.status),
            completed_at=case((last, now), else_=BulkProcessJob.completed_at),
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
    """For the fetcher's failure hook: a page the run waits on (the one after those
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
