"""Inbox cleaning: decide keep or done per thread, then apply it (docs/JOBS.md,
"Cleaning the inbox").

`clean_inbox` (the producer) creates a CleanupJob and pages through the inbox threads
older than `days_old`, following each page token to the next page (so no page is
queued twice), publishing one `clean.process` per thread, one batch per page, each
with a dedup id per (job, thread). `threads_queued` grows only after a page is published.
Its messages spell out all six skips (DEFAULT_SKIPS unless told otherwise).

`clean.process` (3 at a time per account) reads the thread and decides: static rules in
docs/JOBS.md's order, then the AI. It also reads the replaced app's messages: a skip that
is null or left out is False ("don't skip"), and instructions "" are none. It records
the decision in Redis (progress for the UI, with a TTL), then publishes `clean.gmail`
(label-based mail: Maildir, Google) or `clean.outlook` (Microsoft) with `markDone`,
dedup id per (job, thread). Idempotent: a redelivery reuses the decision first recorded
for the (job, thread) instead of asking the AI again (it may answer differently), and
publishes the same message again under the same dedup id; a thread already recorded as
cleaned is skipped.

`clean.gmail` and `clean.outlook` (6 starts per second per account) label the thread's
messages (processed, plus done when markDone), archive or mark them read when markDone,
then record ONE CleanupThread. Idempotent: labels, moves and read flags change nothing
the second time; the CleanupThread row is unique per (job, thread), so an IntegrityError
means an earlier delivery recorded it (a retry inserts no second row); and
a delivery that finds the row leaves the mailbox alone, so a late redelivery cannot
archive again a thread the user has since moved back to the inbox.

This module holds the producer and the three jobs. The keep-or-done rules are in
`clean_rules`, the CleanupJob and CleanupThread rows in `clean_records`, the Redis
progress in `clean_progress`; their names the rest of the app uses are exported here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator
from sqlalchemy import update

from bridge.outcome import Delivery, Result, done, skipped
from bridge.payload import ExternalId, Id, Payload, Text
from bridge.publishing import enqueue, enqueue_many
from bridge.registry import JobSpec, Throttle
from bridge.store.db import session_scope
from tasks.accounts import mailbox_of
from tasks.ai import default_ai
from tasks.jobs.clean_progress import (
    STATE_TTL_SECONDS,
    record_decision,
    recorded_decision,
    thread_state,
)
from tasks.jobs.clean_progress import set_status as _set_status  # read here at each call
from tasks.jobs.clean_records import (
    cleaned_threads,
    cleanup_job,
    complete_if_done,
    record_once,
    recorded,
)
from tasks.jobs.clean_rules import DEFAULT_SKIPS, Decision, Skips, decide, starred_in
from tasks.mail.port import MailProvider, MessageNotFound
from tasks.models import CleanAction, CleanupJob, CleanupJobStatus, MailProviderKind, utcnow
from tasks.shim import registry

log = logging.getLogger("jobbridge.clean")

PAGE_SIZE = 25
PROCESS_EVENT = "inbox-zero/clean.process"
GMAIL_EVENT = "inbox-zero/clean.gmail"
OUTLOOK_EVENT = "inbox-zero/clean.outlook"
INBOX = "INBOX"  # the port's name for the inbox (list_threads' default folder)


def _blank_is_none(value: str | None) -> str | None:
    # The replaced app sends "" for "no instructions": the AI must not read it as some.
    return value if value is not None and value.strip() else None


class ProcessThread(Payload):
    email_account_id: Id
    thread_id: ExternalId
    job_id: Id
    action: CleanAction
    instructions: Annotated[Text | None, AfterValidator(_blank_is_none)] = None
    marked_done_label_id: ExternalId
    processed_label_id: ExternalId
    skips: Skips


class ApplyClean(Payload):
    email_account_id: Id
    thread_id: ExternalId
    job_id: Id
    mark_done: bool
    action: CleanAction
    marked_done_label_id: ExternalId | None = None
    processed_label_id: ExternalId | None = None


# The producer ----------------------------------------------------------------------
def clean_inbox(
    email_account_id: str,
    *,
    action: CleanAction | str,
    days_old: int,
    instructions: str | None = None,
    skips: Skips | None = None,
    marked_done_label: str = "Done",
    processed_label: str = "Processed",
    page_size: int = PAGE_SIZE,
) -> CleanupJob:
    """Create the CleanupJob and queue one `clean.process` per old inbox thread.

    Every message carries all six skips, DEFAULT_SKIPS unless `skips` is given (a skip
    left out would mean False to `clean.process`). Blank instructions are none.

    Label names double as label ids: the Maildir adapter labels by name. A Gmail adapter
    would resolve (or create) the labels here and pass their ids.
    """
    if days_old < 0:
        raise ValueError(f"days_old must be 0 or more, not {days_old}")
    action = CleanAction(action)
    skips = DEFAULT_SKIPS if skips is None else skips
    instructions = _blank_is_none(instructions)
    _, mail = mailbox_of(email_account_id)
    row = CleanupJob(
        email_account_id=email_account_id,
        action=action,
        days_old=days_old,
        instructions=instructions,
        skips=skips.to_wire(),
        status=CleanupJobStatus.RUNNING,
    )
    with session_scope() as session:
        session.add(row)

    def payload_for(thread_id: str) -> ProcessThread:
        return ProcessThread(
            email_account_id=email_account_id,
            thread_id=thread_id,
            job_id=row.id,
            action=action,
            instructions=instructions,
            marked_done_label_id=marked_done_label,
            processed_label_id=processed_label,
            skips=skips,
        )

    try:
        _queue_every_page(
            row.id,
            mail,
            payload_for,
            before=utcnow() - timedelta(days=days_old),
            # Marking read has nothing to do on a read thread (the app lists UNREAD too).
            unread_only=action is CleanAction.MARK_READ,
            processed_label=processed_label,
            page_size=page_size,
        )
    except BaseException:
        # Nothing else would finish it: closed as FAILED (what was queued still runs).
        with session_scope() as session:
            session.execute(
                update(CleanupJob)
                .where(CleanupJob.id == row.id, CleanupJob.status == CleanupJobStatus.RUNNING)
                .values(status=CleanupJobStatus.FAILED)
            )
        raise
    complete_if_done(row.id)  # nothing queued, or every thread cleaned already
    with session_scope() as session:
        final = session.get(CleanupJob, row.id)
    assert final is not None  # created above; jobs are never deleted while running
    log.info("cleanup job %s queued %d threads", final.id, final.threads_queued)
    return final


def _queue_every_page(
    job_id: str,
    mail: MailProvider,
    payload_for: Callable[[str], ProcessThread],
    *,
    before: datetime,
    unread_only: bool,
    processed_label: str,
    page_size: int,
) -> None:
    """One `clean.process` per listed thread, page by page, **following each page's
    token**, each page counted once published; then the run is all queued."""
    token: str | None = None
    while True:
        page = mail.list_threads(
            folder=INBOX,
            before=before,
            unread_only=unread_only,
            # Threads an earlier run handled are not handled again.
            exclude_labels=[processed_label],
            page_token=token,
            page_size=page_size,
        )
        if page.thread_ids:
            enqueue_many(
                process_thread,
                [payload_for(thread_id) for thread_id in page.thread_ids],
                dedup_ids=[_dedup_id("process", job_id, t) for t in page.thread_ids],
            )
            # Counted once published: a publish that raises counts nothing.
            with session_scope() as session:
                session.execute(
                    update(CleanupJob)
                    .where(CleanupJob.id == job_id)
                    .values(threads_queued=CleanupJob.threads_queued + len(page.thread_ids))
                )
        if page.next_page_token is None:
            break
        if page.next_page_token == token:
            # Following a token that leads back to the same page would queue it forever.
            raise RuntimeError(f"the mail provider returned page token {token!r} twice")
        token = page.next_page_token
    with session_scope() as session:
        session.execute(update(CleanupJob).where(CleanupJob.id == job_id).values(all_queued=True))


# clean.process ---------------------------------------------------------------------
@registry.job(
    event=PROCESS_EVENT,
    route="/api/clean",
    payload=ProcessThread,
    concurrency=3,
    flow_key_prefix="ai-clean-",  # the replaced app's key: one limit while both drain
    retries=3,
)
def process_thread(payload: ProcessThread, delivery: Delivery) -> Result:
    cleanup = cleanup_job(payload.job_id, payload.email_account_id)
    if cleanup.status is CleanupJobStatus.CANCELLED:
        return skipped("cleanup job was cancelled")
    if recorded(payload.job_id, payload.thread_id):
        return skipped("thread was already cleaned")
    account, mail = mailbox_of(payload.email_account_id)
    try:
        thread = mail.get_thread(payload.thread_id)
    except MessageNotFound:
        return skipped("thread no longer exists")
    decision = recorded_decision(payload.email_account_id, payload.job_id, payload.thread_id)
    if decision is None:
        decision = decide(
            thread,
            payload.skips,
            payload.instructions,
            ai=default_ai(),
            is_starred=starred_in(mail),
            now=utcnow(),
        )
        # Two deliveries deciding at once: the first one recorded wins for both.
        decision = record_decision(
            payload.email_account_id, payload.job_id, payload.thread_id, thread[-1], decision
        )
    enqueue(
        _apply_job(account.provider),
        ApplyClean(
            email_account_id=payload.email_account_id,
            thread_id=payload.thread_id,
            job_id=payload.job_id,
            mark_done=decision.mark_done,
            action=payload.action,
            marked_done_label_id=payload.marked_done_label_id,
            processed_label_id=payload.processed_label_id,
        ),
        dedup_id=_dedup_id("apply", payload.job_id, payload.thread_id),
    )
    verdict = "done" if decision.mark_done else "keep"
    return done(f"{verdict} ({decision.rule}): {decision.reason}")


def _apply_job(kind: MailProviderKind) -> JobSpec[ApplyClean]:
    match kind:
        case MailProviderKind.MICROSOFT:
            return apply_outlook
        case MailProviderKind.MAILDIR | MailProviderKind.GOOGLE | MailProviderKind.IMAP:
            return apply_gmail  # labels and an archive (keywords, Gmail labels)


# clean.gmail and clean.outlook -----------------------------------------------------
@registry.job(
    event=GMAIL_EVENT,
    route="/api/clean/gmail",
    payload=ApplyClean,
    throttle=Throttle(6, 1),
    flow_key_prefix="gmail-action-",
    retries=3,
)
def apply_gmail(payload: ApplyClean, delivery: Delivery) -> Result:
    # Gmail archives a thread by taking the INBOX label off its messages (batchModify).
    return _apply(payload)


@registry.job(
    event=OUTLOOK_EVENT,
    route="/api/clean/outlook",
    payload=ApplyClean,
    throttle=Throttle(6, 1),
    flow_key_prefix="outlook-action-",
    retries=3,
)
def apply_outlook(payload: ApplyClean, delivery: Delivery) -> Result:
    # Graph has no inbox label: each message of the conversation moves to the well-known
    # Archive folder, and labels are categories ($batch).
    return _apply(payload)


def _apply(payload: ApplyClean) -> Result:
    cleanup = cleanup_job(payload.job_id, payload.email_account_id)
    if cleanup.status is CleanupJobStatus.CANCELLED:
        return skipped("cleanup job was cancelled")
    if recorded(payload.job_id, payload.thread_id):
        # Recorded only after the mailbox was changed: nothing left but the status.
        _set_status(payload.email_account_id, payload.job_id, payload.thread_id, "completed")
        return skipped("thread was already cleaned")
    _, mail = mailbox_of(payload.email_account_id)
    try:
        thread = mail.get_thread(payload.thread_id)
    except MessageNotFound:
        return skipped("thread no longer exists")
    labels = [payload.processed_label_id]
    if payload.mark_done:
        labels.append(payload.marked_done_label_id)
    archiving = payload.mark_done and payload.action is CleanAction.ARCHIVE
    marking_read = payload.mark_done and payload.action is CleanAction.MARK_READ
    # The whole thread at once (one request where the provider batches); messages
    # deleted since the thread was read are passed over.
    mail.change_many([message.id for message in thread], labels=[x for x in labels if x])
    if archiving:  # only what is in the inbox leaves it: the user's replies stay in Sent
        mail.change_many([m.id for m in thread if m.folder == INBOX], archive=True)
    if marking_read:
        mail.change_many([m.id for m in thread if not m.read], mark_read=True)
    recorded_now = record_once(
        payload.job_id,
        payload.email_account_id,
        payload.thread_id,
        archived=archiving,
        mark_done=payload.mark_done,
    )
    _set_status(payload.email_account_id, payload.job_id, payload.thread_id, "completed")
    effect = "archived" if archiving else "marked read" if marking_read else "labelled"
    return done(f"{effect}{'' if recorded_now else ' (recorded by an earlier delivery)'}")


def _dedup_id(stage: str, job_id: str, thread_id: str) -> str:
    # Thread ids can be Message-IDs ("<a@b>"), long and full of characters that some
    # providers' id fields dislike: a digest is short, safe and as unique.
    digest = hashlib.sha256(thread_id.encode()).hexdigest()[:32]
    return f"clean-{stage}-{job_id}-{digest}"


__all__ = [
    "DEFAULT_SKIPS",
    "GMAIL_EVENT",
    "INBOX",
    "OUTLOOK_EVENT",
    "PAGE_SIZE",
    "PROCESS_EVENT",
    "STATE_TTL_SECONDS",
    "ApplyClean",
    "Decision",
    "ProcessThread",
    "Skips",
    "apply_gmail",
    "apply_outlook",
    "clean_inbox",
    "cleaned_threads",
    "decide",
    "process_thread",
    "starred_in",
    "thread_state",
]
