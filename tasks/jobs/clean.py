"""Inbox cleaning: decide keep or done per thread, then apply it (docs/JOBS.md,
"Cleaning the inbox").

`clean_inbox` (the producer) creates a CleanupJob and pages through the inbox threads
older than `days_old`, FOLLOWING the page tokens (the baseline did not, and queued the
same threads again), publishing one `clean.process` per thread, one batch per page, each
with a dedup id per (job, thread). `threads_queued` grows only after a page is published.

`clean.process` (3 at a time per account) reads the thread and decides: static rules in
docs/JOBS.md's order, then the AI. It records the decision in Redis (progress for the UI,
with a TTL), then publishes `clean.gmail` (label-based mail: Maildir, Google) or
`clean.outlook` (Microsoft) with `markDone`, dedup id per (job, thread). Idempotent: a
redelivery reuses the decision first recorded for the (job, thread) instead of asking
the AI again (it may answer differently), and publishes the same message again under
the same dedup id; a thread already recorded as cleaned is skipped.

`clean.gmail` and `clean.outlook` (6 starts per second per account) label the thread's
messages (processed, plus done when markDone), archive or mark them read when markDone,
then record ONE CleanupThread. Idempotent: labels, moves and read flags change nothing
the second time; the CleanupThread row is unique per (job, thread), so an IntegrityError
means an earlier delivery recorded it (the baseline inserted a row on every retry); and
a delivery that finds the row leaves the mailbox alone, so a late redelivery cannot
archive again a thread the user has since moved back to the inbox.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import redis
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from config import get_settings
from tasks import redis_store
from tasks.accounts import mailbox_of
from tasks.ai import AI, default_ai
from tasks.ai import static_rules as rules
from tasks.db import session_scope
from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import MailMessage, MailProvider, MessageNotFound
from tasks.models import (
    CleanAction,
    CleanupJob,
    CleanupJobStatus,
    CleanupThread,
    MailProviderKind,
    utcnow,
)
from tasks.outcome import Delivery, PermanentError, Result, done, skipped
from tasks.payload import ExternalId, Id, Payload, Text
from tasks.registry import Throttle, job

log = logging.getLogger("jobbridge.clean")

PAGE_SIZE = 25
PROCESS_EVENT = "inbox-zero/clean.process"
GMAIL_EVENT = "inbox-zero/clean.gmail"
OUTLOOK_EVENT = "inbox-zero/clean.outlook"
INBOX = "INBOX"  # the port's name for the inbox (list_threads' default folder)
OUTLOOK_ARCHIVE = "Archive"  # Graph's well-known archive folder, as the port names folders
# Long enough for the UI to show a whole run's progress (at 6 threads a second per
# account, 10,000 threads take half an hour), short enough not to keep mail metadata.
STATE_TTL_SECONDS = 24 * 3600
# Gmail's STARRED system label, or a "Starred" keyword on Maildir: compared casefolded.
_STARRED = "starred"


class Skips(Payload):
    """Kinds of thread the user wants kept (defaults are the app's)."""

    # For an AI that can tell "needs a reply": the AI port takes no skips yet, and the
    # offline AI keeps anything a person wrote anyway. No static rule reads it.
    reply: bool = True
    starred: bool = True
    calendar: bool = True  # invites: future events kept, past ones done
    receipt: bool = False
    attachment: bool = False
    conversation: bool = False


class ProcessThread(Payload):
    email_account_id: Id
    thread_id: ExternalId
    job_id: Id
    action: CleanAction
    instructions: Text | None = None
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


@dataclass(frozen=True)
class Decision:
    mark_done: bool
    rule: str  # which rule settled it ("starred", ..., "ai"): for the UI and the logs
    reason: str


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

    Label names double as label ids: the Maildir adapter labels by name. A Gmail adapter
    would resolve (or create) the labels here and pass their ids.
    """
    from bridge.publishing import enqueue_many

    if days_old < 0:
        raise ValueError(f"days_old must be 0 or more, not {days_old}")
    action = CleanAction(action)
    skips = skips or Skips()
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
    before = utcnow() - timedelta(days=days_old)
    token: str | None = None
    while True:
        page = mail.list_threads(
            folder=INBOX,
            before=before,
            # Marking read has nothing to do on a read thread (the app lists UNREAD too).
            unread_only=action is CleanAction.MARK_READ,
            # Threads an earlier run handled are not handled again.
            exclude_labels=[processed_label],
            page_token=token,
            page_size=page_size,
        )
        payloads = [
            ProcessThread(
                email_account_id=email_account_id,
                thread_id=thread_id,
                job_id=row.id,
                action=action,
                instructions=instructions,
                marked_done_label_id=marked_done_label,
                processed_label_id=processed_label,
                skips=skips,
            )
            for thread_id in page.thread_ids
        ]
        if payloads:
            enqueue_many(
                PROCESS_EVENT,
                payloads,
                dedup_ids=[_dedup_id("process", row.id, t) for t in page.thread_ids],
            )
            # Counted once published: a publish that raises counts nothing.
            with session_scope() as session:
                session.execute(
                    update(CleanupJob)
                    .where(CleanupJob.id == row.id)
                    .values(threads_queued=CleanupJob.threads_queued + len(payloads))
                )
        if page.next_page_token is None:
            break
        if page.next_page_token == token:
            # Following a token that leads back to the same page would queue it forever.
            raise RuntimeError(f"the mail provider returned page token {token!r} twice")
        token = page.next_page_token
    with session_scope() as session:
        session.execute(update(CleanupJob).where(CleanupJob.id == row.id).values(all_queued=True))
    _complete_if_done(row.id)  # nothing queued, or every thread cleaned already
    with session_scope() as session:
        final = session.get(CleanupJob, row.id)
    assert final is not None  # created above; jobs are never deleted while running
    log.info("cleanup job %s queued %d threads", final.id, final.threads_queued)
    return final


# clean.process ---------------------------------------------------------------------
@job(
    event=PROCESS_EVENT,
    route="/api/clean",
    payload=ProcessThread,
    concurrency=3,
    retries=3,
)
def process_thread(payload: ProcessThread, delivery: Delivery) -> Result:
    from bridge.publishing import enqueue

    cleanup = _cleanup_job(payload.job_id, payload.email_account_id)
    if cleanup.status is CleanupJobStatus.CANCELLED:
        return skipped("cleanup job was cancelled")
    if _recorded(payload.job_id, payload.thread_id):
        return skipped("thread was already cleaned")
    account, mail = mailbox_of(payload.email_account_id)
    try:
        thread = mail.get_thread(payload.thread_id)
    except MessageNotFound:
        return skipped("thread no longer exists")
    decision = _recorded_decision(payload)
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
        decision = _record_decision(payload, thread[-1], decision)
    event = _apply_event(account.provider)
    enqueue(
        event,
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


def decide(
    thread: Sequence[MailMessage],
    skips: Skips,
    instructions: str | None,
    *,
    ai: AI,
    is_starred: Callable[[MailMessage], bool],
    now: datetime,
) -> Decision:
    """Keep or done for a whole thread: each rule looks at every message before the
    next rule is tried, so a rule's place in docs/JOBS.md's order is its priority (the app
    tried all rules on one message before the next, letting an unsubscribe link in
    the first message beat a star on the last).

    Keep rules look at every message; done rules only at mail from others, so a line
    of the user's own reply cannot get their conversation archived.
    """
    others = [message for message in thread if not message.sent_by_me]
    if skips.starred and any(is_starred(message) for message in thread):
        return Decision(False, "starred", "Starred")
    if skips.conversation and len(others) < len(thread):
        return Decision(False, "conversation", "You took part in this conversation")
    if skips.attachment and any(message.has_attachment for message in thread):
        return Decision(False, "attachment", "Has an attachment")
    if skips.receipt and any(rules.is_receipt(message) for message in thread):
        return Decision(False, "receipt", "Looks like a receipt")
    if skips.calendar:
        when = _event_time(others)
        if when is not None and when <= now:
            return Decision(True, "calendar", "Invitation to an event that is over")
        if when is not None:
            return Decision(False, "calendar", "Invitation to an upcoming event")
    if any(rules.has_unsubscribe_link(message) for message in others):
        return Decision(True, "unsubscribe", "Has an unsubscribe link")
    if any(rules.is_newsletter(message) for message in others):
        return Decision(True, "newsletter", "Sent by a newsletter")
    category = rules.gmail_category(thread[-1])
    if category is not None:
        return Decision(True, "category", f"Filed under {category}")
    verdict = ai.decide_clean(thread, instructions)
    return Decision(verdict.done, "ai", verdict.reason)


def _event_time(messages: Sequence[MailMessage]) -> datetime | None:
    """When the newest invitation's event starts; None if no invitation says when."""
    for message in reversed(messages):
        if rules.is_calendar_invite(message):
            when = rules.calendar_event_time(message)
            if when is not None:
                return when
    return None


def starred_in(mail: MailProvider) -> Callable[[MailMessage], bool]:
    """Whether a message is starred: a STARRED label, or on Maildir the "F" flag."""

    def starred(message: MailMessage) -> bool:
        if any(label.casefold() == _STARRED for label in message.labels):
            return True
        if isinstance(mail, MaildirProvider):
            # MailMessage carries no flags and the adapter does not map "F" (flagged,
            # the Maildir star) to a label, so ask the Maildir for it.
            try:
                flags = mail.folder(message.folder).get_message(message.id).get_flags()
            except (KeyError, FileNotFoundError):
                return False  # moved since the thread was read: it no longer tells
            return "F" in flags
        return False

    return starred


def _apply_event(kind: MailProviderKind) -> str:
    match kind:
        case MailProviderKind.MICROSOFT:
            return OUTLOOK_EVENT
        case MailProviderKind.MAILDIR | MailProviderKind.GOOGLE:
            return GMAIL_EVENT  # labels and an inbox label (Maildir keywords, Gmail)


# clean.gmail and clean.outlook -----------------------------------------------------
@job(
    event=GMAIL_EVENT,
    route="/api/clean/gmail",
    payload=ApplyClean,
    throttle=Throttle(6, 1),
    retries=3,
)
def apply_gmail(payload: ApplyClean, delivery: Delivery) -> Result:
    # Gmail archives a thread by taking the INBOX label off its messages.
    return _apply(payload, lambda mail, message_id: mail.archive(message_id))


@job(
    event=OUTLOOK_EVENT,
    route="/api/clean/outlook",
    payload=ApplyClean,
    throttle=Throttle(6, 1),
    retries=3,
)
def apply_outlook(payload: ApplyClean, delivery: Delivery) -> Result:
    # Graph has no inbox label: each message of the conversation moves to Archive,
    # and labels are categories.
    return _apply(payload, lambda mail, message_id: mail.move(message_id, OUTLOOK_ARCHIVE))


def _apply(payload: ApplyClean, archive: Callable[[MailProvider, str], None]) -> Result:
    cleanup = _cleanup_job(payload.job_id, payload.email_account_id)
    if cleanup.status is CleanupJobStatus.CANCELLED:
        return skipped("cleanup job was cancelled")
    if _recorded(payload.job_id, payload.thread_id):
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
    for message in thread:
        try:
            for label in labels:
                if label:
                    mail.label(message.id, label)
            # Only what is in the inbox leaves it: the user's replies stay in Sent.
            if archiving and message.folder == INBOX:
                archive(mail, message.id)
            if marking_read and not message.read:
                mail.mark_read(message.id)
        except MessageNotFound:
            continue  # deleted since the thread was read: nothing to clean
    recorded = _record_once(payload, archived=archiving)
    _set_status(payload.email_account_id, payload.job_id, payload.thread_id, "completed")
    effect = "archived" if archiving else "marked read" if marking_read else "labelled"
    return done(f"{effect}{'' if recorded else ' (recorded by an earlier delivery)'}")


# The database ----------------------------------------------------------------------
def _cleanup_job(job_id: str, account_id: str) -> CleanupJob:
    with session_scope() as session:
        row = session.get(CleanupJob, job_id)
    if row is None:
        raise PermanentError(f"unknown cleanup job {job_id}")
    if row.email_account_id != account_id:
        raise PermanentError(f"cleanup job {job_id} belongs to another email account")
    return row


def _recorded(job_id: str, thread_id: str) -> bool:
    with session_scope() as session:
        found = session.scalar(
            select(CleanupThread.id).where(
                CleanupThread.job_id == job_id, CleanupThread.thread_id == thread_id
            )
        )
    return found is not None


def _record_once(payload: ApplyClean, *, archived: bool) -> bool:
    """Insert the thread's CleanupThread; False if an earlier delivery already had."""
    row = CleanupThread(
        job_id=payload.job_id,
        email_account_id=payload.email_account_id,
        thread_id=payload.thread_id,
        archived=archived,
        mark_done=payload.mark_done,
    )
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        # The unique (job_id, thread_id) says another delivery won; any other integrity
        # error (the job deleted meanwhile) is not ours to swallow.
        if _recorded(payload.job_id, payload.thread_id):
            return False
        raise
    _complete_if_done(payload.job_id)
    return True


def _complete_if_done(job_id: str) -> None:
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
    with session_scope() as session:
        return list(
            session.scalars(
                select(CleanupThread)
                .where(CleanupThread.job_id == job_id)
                .order_by(CleanupThread.created_at)
            )
        )


# Redis: the thread's decision and status, for progress and the UI --------------------
def _state_key(account_id: str, job_id: str, thread_id: str) -> str:
    return redis_store.key(redis_store.CLEAN_THREAD, f"{account_id}:{job_id}:{thread_id}")


def _redis() -> redis.Redis | None:
    # The embedded default has no Redis: no progress then; the CleanupThread rows and
    # the dedup ids still make every step happen once.
    return redis_store.client() if get_settings().redis_url else None


def thread_state(account_id: str, job_id: str, thread_id: str) -> dict[str, str]:
    """What the UI shows for a thread of a run: markDone, rule, reason, status, ..."""
    client = _redis()
    if client is None:
        return {}
    raw = cast("dict[bytes, bytes]", client.hgetall(_state_key(account_id, job_id, thread_id)))
    return {name.decode(): value.decode() for name, value in raw.items()}


def _recorded_decision(payload: ProcessThread) -> Decision | None:
    state = thread_state(payload.email_account_id, payload.job_id, payload.thread_id)
    if "markDone" not in state:
        return None
    return Decision(state["markDone"] == "true", state["rule"], state["reason"])


def _record_decision(payload: ProcessThread, newest: MailMessage, decision: Decision) -> Decision:
    """Record the decision unless one is recorded already; return the one recorded."""
    client = _redis()
    if client is None:
        return decision
    key = _state_key(payload.email_account_id, payload.job_id, payload.thread_id)
    with client.pipeline(transaction=True) as pipe:
        # One transaction: the three decision fields are always written together, so
        # HSETNX on each keeps the first decision whole.
        pipe.hsetnx(key, "markDone", "true" if decision.mark_done else "false")
        pipe.hsetnx(key, "rule", decision.rule)
        pipe.hsetnx(key, "reason", decision.reason)
        pipe.hsetnx(key, "status", "applying")  # never back from "completed"
        pipe.hset(
            key,
            mapping={
                "threadId": payload.thread_id,
                "jobId": payload.job_id,
                "subject": newest.subject,
                "from": newest.sender,
                "date": newest.date.isoformat() if newest.date else "",
            },
        )
        pipe.expire(key, STATE_TTL_SECONDS)
        pipe.hmget(key, ["markDone", "rule", "reason"])
        results = pipe.execute()
    mark_done, rule, reason = (cast(bytes, value).decode() for value in results[-1])
    return Decision(mark_done == "true", rule, reason)


def _set_status(account_id: str, job_id: str, thread_id: str, status: str) -> None:
    client = _redis()
    if client is None:
        return
    key = _state_key(account_id, job_id, thread_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, "status", status)
        pipe.expire(key, STATE_TTL_SECONDS)
        pipe.execute()


def _dedup_id(stage: str, job_id: str, thread_id: str) -> str:
    # Thread ids can be Message-IDs ("<a@b>"), long and full of characters that some
    # providers' id fields dislike: a digest is short, safe and as unique.
    digest = hashlib.sha256(thread_id.encode()).hexdigest()[:32]
    return f"clean-{stage}-{job_id}-{digest}"
