"""What a bulk fetcher makes of one listed page (tasks/jobs/bulk_process.py): the
page's workers, the messages to publish among them, the page's count, and the dedup id
of a page's message."""

from __future__ import annotations

from email.utils import parseaddr

from sqlalchemy import update

from bridge.store.db import autocommit_session, rows_changed
from tasks.jobs import bulk_records as records
from tasks.jobs.bulk_worker import ProcessMessage
from tasks.mail.port import MailProvider, MessageNotFound, ThreadPage
from tasks.models import OPEN_BULK_STATUSES, BulkJobStatus, BulkProcessJob


def pages_named(first: int, last: int) -> str:
    return f"page {first}" if first == last else f"pages {first}-{last}"


def page_workers(
    row: BulkProcessJob,
    account_id: str,
    force_reprocess: bool,
    page: ThreadPage,
    mail: MailProvider,
    ignored_senders: set[str],
) -> tuple[list[ProcessMessage], list[ProcessMessage]]:
    """The page's workers (its kept messages), and those of them to publish: the run
    counted the others already (an earlier try of this page published them, then failed
    before its count)."""
    newest = newest_messages(page, mail, ignored_senders)
    ids = list(newest.values())
    handled, counted = records.handled_or_counted(
        account_id, row.id, ids, None if force_reprocess else row.created_at
    )
    # Queued: not handled before the run (a result since is this run's, its count perhaps
    # still to come), or counted by this run already: counted as queued, not resent.
    workers = [
        ProcessMessage(
            job_id=row.id,
            email_account_id=account_id,
            message_id=message_id,
            thread_id=thread_id,
            force_reprocess=force_reprocess,
        )
        for thread_id, message_id in newest.items()
        if message_id not in handled or message_id in counted
    ]
    return workers, [w for w in workers if w.message_id not in counted]


def count_page(job_id: str, number: int, page: ThreadPage, queued: int) -> bool:
    """Count the page, if the run is still open and has counted the pages before it and
    not this one (else another delivery counted it: False)."""
    with autocommit_session() as session:  # one statement: no BEGIN and COMMIT
        return bool(
            rows_changed(
                session,
                update(BulkProcessJob)
                .where(
                    BulkProcessJob.id == job_id,
                    BulkProcessJob.pages_fetched == number,
                    BulkProcessJob.status.in_(OPEN_BULK_STATUSES),
                )
                .values(
                    status=BulkJobStatus.RUNNING,
                    pages_fetched=number + 1,
                    total_emails=BulkProcessJob.total_emails + len(page.thread_ids),
                    emails_queued=BulkProcessJob.emails_queued + queued,
                    next_page_token=page.next_page_token,
                    all_queued=page.next_page_token is None,
                ),
            )
        )


def newest_messages(page: ThreadPage, mail: MailProvider, ignored: set[str]) -> dict[str, str]:
    """Thread -> its newest message's id, for the threads whose newest message exists
    and is not from an ignored sender. The message is read only to learn its sender (or
    its id, when the listing does not name it); without ignored senders, one the listing
    names is taken as it is (gone since: the worker counts it as such)."""
    kept: dict[str, str] = {}
    for thread_id in page.thread_ids:
        known = page.newest_message_ids.get(thread_id)
        if known and not ignored:
            kept[thread_id] = known
            continue
        try:
            newest = mail.get_message(known) if known else mail.get_thread(thread_id)[-1]
        except MessageNotFound:
            continue
        if parseaddr(newest.sender)[1].lower() not in ignored:
            kept[thread_id] = newest.id
    return kept


def page_dedup_id(job_id: str, page: int, attempt: int, by: int | None = None) -> str:
    """A page's dedup id, by the delivery that publishes it: the fetcher of page `by`
    (default: the page before, whose own page it follows) on its try `attempt`. A retry's
    is its own: the copy published ahead may have spent its retries waiting for the count,
    and Inngest (ids dedup for 24 hours) would drop the same id. So is that of a fetcher
    that went on to the page before from a page of its own: another delivery may publish
    the same page on the same try. Copies count once."""
    by_page = "" if by is None or by == page - 1 else f"-by-{by}"
    return f"bulk-{job_id}-page-{page}{by_page}" + (f"-try-{attempt}" if attempt else "")
