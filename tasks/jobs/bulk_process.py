"""Bulk processing: run an account's rules over its inbox, page by page (docs/JOBS.md,
"Bulk processing").

`start` creates the job and enqueues page 0. Each fetcher page lists up to 25 threads,
keeps those not yet handled, publishes one worker job per kept message, and only then
counts them, in one update that matches only while `pagesFetched` still equals its page
(a publish that fails leaves the counts as they were). A fetcher goes on to the pages
after its own for GO_ON_SECONDS after its first, each published and counted in turn;
then the next page is published right after the last page's workers, before its count;
it runs once this fetcher has returned (one fetcher at a time per account) and so
counted. A page published ahead whose page before failed before counting waits a few
seconds (RetryLater); that page's retry publishes it again, and a retry of a fetcher
whose page is counted publishes the first page not counted (or completes the run after
the last), as does its failure hook. A page a fetcher went on to that fails before its
count is published to go on alone. A page's dedup id names the fetcher publishing it.
Where the provider runs a job during its publish (direct HTTP), the next page is
published after the count instead, as after a page that queued nothing. The last page
sets `all_queued`, so the job cannot complete while pages are still being fetched.
Each worker counts its message once, by inserting a BulkProcessItem row, and completes
the job in the same update when it was the last. A page counted after an earlier try
failed counts as queued the messages the run counted already, so the totals add up.

The messages keep the replaced app's shape, both ways: a fetcher message names its page
`pageCount` and carries the run's window and options (`startDate`, `endDate`,
`onlyUnread`, `forceReprocess`), a worker message `forceReprocess`. What a message
carries wins over the job row, which fills in what it leaves out (`page` is read too).
With forceReprocess, messages that already have a rule result are queued and have the
rules applied again, once per run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import AliasChoices, Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bridge.outcome import Delivery, PermanentError, Result, RetryLater, done, skipped
from bridge.payload import Id, Payload, Text, Timestamp
from bridge.publishing import enqueue, enqueue_many
from bridge.receipt import Receipt
from bridge.store.db import read_scope, rows_changed, session_scope
from config import Provider
from tasks.accounts import account_or_fail
from tasks.jobs import bulk_records as records
from tasks.jobs.bulk_pages import count_page, page_dedup_id, page_workers, pages_named
from tasks.jobs.bulk_worker import ProcessMessage, either, process_message
from tasks.mail.accounts import mail_provider_for
from tasks.models import (
    OPEN_BULK_STATUSES,
    BulkJobStatus,
    BulkProcessJob,
    EmailAccount,
    utcnow,
)
from tasks.shim import registry

PAGE_SIZE = 25
PAGES_MAX = 2**31 - 2  # the most a run can count: pagesFetched is a 32-bit integer column
# A page published ahead of its page before's count waits this long for it.
_PREVIOUS_PAGE_WAIT_SECONDS = 1.0
# A fetcher goes on to the pages after its own for this long after its first page (whose
# listing may be the whole folder's), publishing each page's workers as it counts it,
# and then publishes the next page as a message. Published one by one, the next page
# would queue behind its page's workers: the pool would take it only once it had taken
# them, and then wait, nothing queued, while it was listed.
GO_ON_SECONDS = 0.1
FETCHER_EVENT = "inbox-zero/bulk-process.fetcher"
log = logging.getLogger("jobbridge.bulk")


class BulkJobAlreadyOpen(Exception):
    """The account has a PENDING or RUNNING bulk job (the start route answers 409)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"bulk job {job_id} is already open for this account")
        self.job_id = job_id


class FetchPage(Payload):
    job_id: Id
    email_account_id: Id
    page_token: Text | None = None
    page: int = Field(
        0,
        ge=0,
        le=PAGES_MAX,
        validation_alias=AliasChoices("pageCount", "page"),
        serialization_alias="pageCount",
    )
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None
    only_unread: bool | None = None
    force_reprocess: bool | None = None


@dataclass(frozen=True)
class Window:
    """What one page lists, and whether handled messages are processed again."""

    start: datetime
    end: datetime | None
    only_unread: bool
    force_reprocess: bool

    @classmethod
    def of(cls, row: BulkProcessJob, message: FetchPage) -> Window:
        end = message.end_date or row.end_date
        return cls(
            start=_utc(message.start_date or row.start_date),
            end=None if end is None else _utc(end),
            only_unread=either(message.only_unread, row.only_unread),
            force_reprocess=either(message.force_reprocess, row.force_reprocess),
        )


def _utc(value: datetime) -> datetime:
    # The replaced app wrote ISO text with Z; a naive time is read as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def page_message(row: BulkProcessJob, window: Window, page: int, token: str | None) -> FetchPage:
    """A fetcher message in the shape both apps read (see the module's docstring)."""
    return FetchPage(
        job_id=row.id,
        email_account_id=row.email_account_id,
        page_token=token,
        page=page,
        start_date=window.start,
        end_date=window.end,
        only_unread=window.only_unread,
        force_reprocess=window.force_reprocess,
    )


def start(
    email_account_id: str,
    start_date: datetime,
    end_date: datetime | None,
    only_unread: bool,
    force_reprocess: bool = False,
) -> BulkProcessJob:
    """Create the job (one open job per account, enforced by the database) and fetch page 0."""
    account_or_fail(email_account_id)
    row = BulkProcessJob(
        email_account_id=email_account_id,
        start_date=start_date,
        end_date=end_date,
        only_unread=only_unread,
        force_reprocess=force_reprocess,
        status=BulkJobStatus.PENDING,
    )
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        raise BulkJobAlreadyOpen(_open_job_id(email_account_id) or "?") from None
    window = Window(start_date, end_date, only_unread, force_reprocess)
    payload = page_message(row, window, 0, None)
    try:
        enqueue(fetch_page, payload, dedup_id=page_dedup_id(row.id, 0, 0))
    except Exception as error:
        # Nothing was queued: close the job so the account can start again.
        _set_status(row.id, BulkJobStatus.FAILED, error=f"publish of page 0 failed: {error}")
        raise
    return row


def cancel(job_id: str) -> bool:
    """Open -> CANCELLED; queued work is skipped when it is delivered."""
    with session_scope() as session:
        return (
            rows_changed(
                session,
                update(BulkProcessJob)
                .where(BulkProcessJob.id == job_id, BulkProcessJob.status.in_(OPEN_BULK_STATUSES))
                .values(status=BulkJobStatus.CANCELLED, completed_at=utcnow()),
            )
            == 1
        )


def get(job_id: str) -> BulkProcessJob | None:
    with read_scope() as session:
        return session.get(BulkProcessJob, job_id)


def _open_job_id(account_id: str) -> str | None:
    with session_scope() as session:
        return session.scalar(
            select(BulkProcessJob.id).where(
                BulkProcessJob.email_account_id == account_id,
                BulkProcessJob.status.in_(OPEN_BULK_STATUSES),
            )
        )


def _set_status(job_id: str, status: BulkJobStatus, error: str | None = None) -> None:
    with session_scope() as session:
        session.execute(
            update(BulkProcessJob)
            .where(BulkProcessJob.id == job_id)
            .values(status=status, error=error, completed_at=utcnow())
        )


def fetcher_failed(payload: FetchPage, error: str) -> None:
    """The fetcher's failure hook. A page the run waits on (the one after those counted)
    that failed for good ends the run as FAILED (`records.fail_run`). A page the run
    counted since is a copy, or a delivery that went on past its page and could not
    publish what follows: the hook does what its retry would have (publishes the first
    page not counted, or completes the run after the last), so a copy failing for good
    (its database away) leaves a run that goes on as it was. Raises when it cannot, so
    that it is run again."""
    row = records.page_read(payload.job_id, payload.email_account_id).run
    if row is None or row.status not in OPEN_BULK_STATUSES:
        return
    if row.pages_fetched <= payload.page:
        records.fail_run(payload, error)
    else:
        dedup_id = page_dedup_id(row.id, row.pages_fetched, 0, payload.page) + "-hook"
        _after_the_counted_pages(row, Window.of(row, payload), dedup_id)


def _after_the_counted_pages(row: BulkProcessJob, window: Window, dedup_id: str) -> None:
    """What follows the pages a run has counted: once the last is, the run's completion
    (if its workers are done); else the first page not counted, published under
    `dedup_id`."""
    if row.all_queued:
        records.complete_if_done(row.id)
    elif row.next_page_token is not None:
        following = page_message(row, window, row.pages_fetched, row.next_page_token)
        enqueue(fetch_page, following, dedup_id=dedup_id)


@registry.job(
    event=FETCHER_EVENT,
    route="/api/bulk-process/fetcher",
    payload=FetchPage,
    concurrency=1,
    retries=3,
    # Failed for good: the run is closed as FAILED, since it could never complete.
    on_failure=fetcher_failed,
)
def fetch_page(payload: FetchPage, delivery: Delivery) -> Result:
    read = records.page_read(payload.job_id, payload.email_account_id)
    row = read.run
    if row is None:
        raise PermanentError(f"unknown bulk job {payload.job_id}")
    if row.status not in OPEN_BULK_STATUSES:
        return skipped(f"job is {row.status.value}")
    window = Window.of(row, payload)
    if row.pages_fetched > payload.page:
        return _counted_already(row, window, payload, delivery)
    if row.pages_fetched < payload.page:
        # Published ahead by the page before, not counted yet: it failed before its count
        # (its retry counts it, and publishes this page again), or, with no Redis to keep
        # one fetcher at a time, it is still running.
        raise RetryLater(f"page {payload.page - 1} is not counted yet", _PREVIOUS_PAGE_WAIT_SECONDS)
    account = read.account
    if account is None:
        raise PermanentError(f"unknown email account {payload.email_account_id}")
    return _list_pages(row, account, read.ignored_senders, window, payload, delivery)


def _counted_already(
    row: BulkProcessJob, window: Window, payload: FetchPage, delivery: Delivery
) -> Result:
    """A page the run counted. A retry of its delivery may follow a crash between a count
    and what follows it (the publish of the page after, this page's or one the delivery
    went on to; or, after the last page, the run's completion): that is done again. A
    first try is a copy (the delivery that counted published what follows): nothing to
    do, so copies do not breed copies."""
    if delivery.attempt > 0 or delivery.redelivered:
        dedup_id = page_dedup_id(row.id, row.pages_fetched, delivery.attempt, payload.page)
        _after_the_counted_pages(row, window, dedup_id)
    return skipped(f"page {payload.page} was already fetched")


def _list_pages(
    row: BulkProcessJob,
    account: EmailAccount,
    ignored_senders: set[str],
    window: Window,
    payload: FetchPage,
    delivery: Delivery,
) -> Result:
    """The delivery's page, and the pages after it while GO_ON_SECONDS last."""
    mail = mail_provider_for(account)
    number, token = payload.page, payload.page_token
    go_on_until: float | None = None
    queued = listed = 0
    while True:
        try:
            page = mail.list_threads(
                after=window.start,
                before=window.end,
                unread_only=window.only_unread,
                page_token=token,
                page_size=PAGE_SIZE,
            )
            if go_on_until is None:  # after the first page: its listing may be the folder's
                go_on_until = time.monotonic() + GO_ON_SECONDS
            last_page = page.next_page_token is None
            go_on = not last_page and number + 1 < PAGES_MAX and time.monotonic() < go_on_until
            workers, fresh = page_workers(
                row, account.id, window.force_reprocess, page, mail, ignored_senders
            )
            following = (
                None
                if last_page or go_on
                else page_message(row, window, number + 1, page.next_page_token)
            )
            ahead = _publish(row.id, fresh, following, delivery, payload.page)
        except Exception as error:
            if number == payload.page:
                raise  # the delivery's own page: its retries, then its failure hook
            # A page the delivery went on to, not counted: it goes on as a message of its
            # own, with its own retries and failure hook, as if the delivery had stopped
            # before it. (A count that raised may have been made: that one is the
            # delivery's own failure, whose retry publishes the first page not counted.)
            log.warning("bulk job %s: page %s goes on alone: %s", row.id, number, error)
            _enqueue_page(row, window, number, token, delivery, payload.page)
            return done(
                f"{pages_named(payload.page, number - 1)}: {queued} of {listed} threads queued; "
                f"page {number} goes on alone ({type(error).__name__})"
            )
        if not count_page(row.id, number, page, len(workers)):
            return skipped(f"page {number} was counted by another delivery")
        queued, listed = queued + len(workers), listed + len(page.thread_ids)
        if last_page:
            records.complete_if_done(row.id)
            break
        if not go_on:
            if not ahead:
                _enqueue_page(row, window, number + 1, page.next_page_token, delivery, payload.page)
            break
        number, token = number + 1, page.next_page_token
    return done(f"{pages_named(payload.page, number)}: {queued} of {listed} threads queued")


def _publish(
    job_id: str,
    workers: list[ProcessMessage],
    following: FetchPage | None,
    delivery: Delivery,
    own_page: int,
) -> bool:
    """The page's workers, then the next page, where they were queued: True when the
    next page was published. The workers go first: a pool process that took the next
    page while this one still runs would find the account's one fetcher slot taken and
    put it back for a while; a free process takes the workers first (on Celery, one
    batch message of the page), and the one running this page takes the next once it
    has returned. Where more processes wait than the workers keep busy, one may take
    the next page before this page's count and wait for the slot. Published before the
    count, so that a page that cannot publish it is retried, or fails its run, instead
    of leaving the run counted with no page to follow. Not where the provider ran the
    workers during the publish (direct HTTP): the next page would run before this
    page's count, so it is published after it, as on a page without workers."""
    receipts = _publish_workers(job_id, workers)
    queued = bool(receipts) and all(receipt.provider is not Provider.HTTP for receipt in receipts)
    if following is not None and queued:
        dedup_id = page_dedup_id(job_id, following.page, delivery.attempt, own_page)
        enqueue(fetch_page, following, dedup_id=dedup_id)
    return following is not None and queued


def _publish_workers(job_id: str, workers: list[ProcessMessage]) -> list[Receipt]:
    if not workers:
        return []
    ids = [f"bulk-{job_id}-msg-{worker.message_id}" for worker in workers]
    return enqueue_many(process_message, workers, dedup_ids=ids)


def _enqueue_page(
    row: BulkProcessJob,
    window: Window,
    page: int,
    token: str | None,
    delivery: Delivery,
    own_page: int,
) -> None:
    """Publish page `page` (listed from `token`) from the delivery of fetcher page
    `own_page`, unless no page follows (no token: the last page was counted)."""
    if token is not None:
        following = page_message(row, window, page, token)
        dedup_id = page_dedup_id(row.id, page, delivery.attempt, own_page)
        enqueue(fetch_page, following, dedup_id=dedup_id)
