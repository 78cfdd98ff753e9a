"""Categorize senders: give each sender an account hears from a category
(docs/JOBS.md, "Categorizing senders").

`categorize_senders` (the producer) drops duplicates and senders already categorized,
publishes the rest in chunks of 50 with one `enqueue_many`, and marks them queued in
the account's progress. Each `categorize.senders-batch` run reads a few recent
messages per sender, decides its category with the static rules (Newsletter, Receipt)
and asks the AI only about the rest, then writes the Sender's category, creating the
Category row the first time a name is used. Nothing is written until a category is
known: no "unknown" placeholder that is overwritten later (the baseline's bug), and a
sender the AI cannot place stays uncategorized, yet counts as done.

Idempotent: a sender that already has a category is skipped (so a redelivered batch
asks the AI nothing again and the first category written wins); the Sender row is
unique per (account, email) and only a NULL category is ever set; the Category row is
unique per (account, name). Progress is one Redis hash per account, sender -> queued
or done, so marking a sender done twice changes nothing: the totals are counts of
distinct senders, not counters a retry could bump twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, cast

from pydantic import Field, StringConstraints
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import get_settings
from tasks import redis_store
from tasks.accounts import account_or_fail, mailbox_of
from tasks.ai import AI, default_ai
from tasks.ai.static_rules import RECEIPT, sender_address, static_category
from tasks.db import rows_changed, session_scope
from tasks.mail.port import MailMessage, MailProvider, MessageNotFound
from tasks.models import Category, Sender, utcnow
from tasks.models.base import ADDRESS_LENGTH
from tasks.outcome import Delivery, Result, done
from tasks.payload import Id, Payload, Storable
from tasks.registry import job

log = logging.getLogger("jobbridge.categorize")

BATCH_EVENT = "inbox-zero/categorize.senders-batch"
CHUNK_SIZE = 50  # senders per job: what the payload accepts
MESSAGES_PER_SENDER = 3  # enough for a verdict, few enough to keep an AI prompt small
# The mail port cannot search by sender, so a batch scans the newest inbox threads for
# its senders' mail. The bound keeps one run's cost fixed however large the mailbox; a
# sender not seen within it has no recent mail to judge and stays uncategorized.
SCAN_FOLDER = "INBOX"
SCAN_PAGE_SIZE = 25
MAX_SCANNED_THREADS = 250
PROGRESS_TTL_SECONDS = 60 * 60  # refreshed on every write: progress of a finished run fades
QUEUED, DONE = "queued", "done"
CATEGORY_NAME_LENGTH = 100  # Category.name's column

# Email-ish, not RFC 5322: one "@" with something on both sides, no spaces or list
# separators, so a display name ("Ann <a@b>") or two addresses in one string are refused.
SenderEmail = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,  # Sender.email is stored lower-cased (bulk_process compares it so)
        max_length=ADDRESS_LENGTH,
        pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$",
    ),
    Storable,
]


class CategorizeSendersBatch(Payload):
    email_account_id: Id
    senders: list[SenderEmail] = Field(min_length=1, max_length=CHUNK_SIZE)


@dataclass(frozen=True)
class Queued:
    """What the producer did: jobs published, senders in them, senders left out."""

    chunks: int
    senders: int
    already_categorized: int


# Producer ----------------------------------------------------------------------------


def categorize_senders(email_account_id: str, senders: Iterable[str]) -> Queued:
    """Queue every distinct, not yet categorized sender, 50 to a job, in one publish.

    Dedup ids come from the account and the chunk's content, and senders are sorted
    before chunking, so calling this twice with the same senders publishes the same
    jobs under the same ids (a double click is one run where the provider dedups).
    """
    from bridge.publishing import enqueue_many  # bridge imports tasks: import when called

    account_or_fail(email_account_id)
    wanted = sorted({_normal(sender) for sender in senders} - {""})
    categorized = _categorized(email_account_id, wanted)
    todo = [sender for sender in wanted if sender not in categorized]
    if not todo:
        return Queued(0, 0, len(categorized))
    chunks = [todo[start : start + CHUNK_SIZE] for start in range(0, len(todo), CHUNK_SIZE)]
    # Wire dicts, not models: enqueue_many validates them and a bad sender raises its
    # InvalidPayload (naming `senders`) before anything is sent, as for any other job.
    payloads = [{"emailAccountId": email_account_id, "senders": chunk} for chunk in chunks]
    # Marked before the publish, so a job that finishes at once is not followed by a
    # late "queued". Only senders the progress does not know yet are marked: one done in
    # this hour stays done (a deduplicated chunk runs no new job to mark it again). A
    # failed publish takes its marks back, so no progress waits for a job never sent.
    marked = _mark_queued(email_account_id, todo)
    try:
        receipts = enqueue_many(
            BATCH_EVENT,
            payloads,
            dedup_ids=[_dedup_id(email_account_id, chunk) for chunk in chunks],
        )
    except Exception:
        _forget(email_account_id, marked)
        raise
    fresh = [
        chunk for chunk, receipt in zip(chunks, receipts, strict=True) if not receipt.deduplicated
    ]
    return Queued(len(fresh), sum(map(len, fresh)), len(categorized))


def progress(email_account_id: str) -> dict[str, int]:
    """`{"total", "completed"}`: senders queued (or run) within the last hour, and how
    many of them are done. Zeros when there is no Redis to keep progress in."""
    if not _progress_enabled():
        return {"total": 0, "completed": 0}
    states = cast("list[bytes]", redis_store.client().hvals(_progress_key(email_account_id)))
    return {"total": len(states), "completed": sum(1 for s in states if s == DONE.encode())}


def _normal(sender: str) -> str:
    return sender.strip().lower()


def _dedup_id(account_id: str, chunk: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:32]
    return f"categorize-{account_id}-{digest}"


# The job -----------------------------------------------------------------------------


@job(
    event=BATCH_EVENT,
    route="/api/user/categorize/senders/batch",
    payload=CategorizeSendersBatch,
    concurrency=3,
    retries=3,
)
def categorize_senders_batch(payload: CategorizeSendersBatch, delivery: Delivery) -> Result:
    account, mail = mailbox_of(payload.email_account_id)
    senders = list(dict.fromkeys(payload.senders))  # a duplicate would be asked about twice
    # Senders categorized by an earlier delivery of this batch, another batch or the
    # user: skipped, so a redelivery repeats no AI call and never changes a category.
    categorized = _categorized(account.id, senders)
    todo = [sender for sender in senders if sender not in categorized]
    found = recent_messages_from(mail, todo) if todo else {}
    ai: AI | None = None
    tally: Counter[str] = Counter()
    for sender in todo:
        messages = found.get(sender, [])
        name = static_verdict(messages)
        how = "rules"
        if name is None and messages:  # no mail, nothing to judge: no AI call to waste
            ai = ai or default_ai()
            name = _category_name(ai.categorize_sender(sender, messages))
            how = "ai"
        if name is None:
            tally["uncategorized"] += 1
            continue
        # Saved one sender at a time: if a later sender fails, the retry skips these.
        tally[how if _save(account.id, sender, name) else "raced"] += 1
    # Every sender of the batch is done, the skipped and uncategorized ones included; a
    # crash before this line leaves them to the redelivery, which marks them all.
    _mark_done(account.id, senders)
    return done(
        f"{tally['rules']} by rules, {tally['ai']} by AI, {tally['uncategorized']} "
        f"uncategorized, {len(senders) - len(todo) + tally['raced']} already categorized"
    )


def recent_messages_from(
    mail: MailProvider,
    senders: Iterable[str],
    *,
    per_sender: int = MESSAGES_PER_SENDER,
    max_threads: int = MAX_SCANNED_THREADS,
) -> dict[str, list[MailMessage]]:
    """Up to `per_sender` newest messages from each sender (lower-cased addresses).

    One scan of the newest inbox threads serves the whole batch, and it stops as soon
    as every sender has enough mail.
    """
    found: dict[str, list[MailMessage]] = {_normal(sender): [] for sender in senders}
    seen: set[str] = set()  # a message counts once, even if a thread were listed twice
    scanned = 0
    token: str | None = None
    while found and scanned < max_threads:
        page = mail.list_threads(
            folder=SCAN_FOLDER,
            page_token=token,
            page_size=min(SCAN_PAGE_SIZE, max_threads - scanned),
        )
        for thread_id in page.thread_ids:
            scanned += 1
            try:
                thread = mail.get_thread(thread_id)
            except MessageNotFound:
                continue  # gone since the listing
            # Newest first within the thread too, and no more than needed is kept: a
            # prolific sender's hundredth message adds nothing but memory.
            for message in reversed(thread):
                address = sender_address(message)
                if message.sent_by_me or message.id in seen or address not in found:
                    continue
                if len(found[address]) >= per_sender:
                    continue
                seen.add(message.id)
                found[address].append(message)
            if all(len(messages) >= per_sender for messages in found.values()):
                return _newest(found, per_sender)
        if page.next_page_token is None:
            break
        token = page.next_page_token
    return _newest(found, per_sender)


def _newest(
    found: Mapping[str, list[MailMessage]], per_sender: int
) -> dict[str, list[MailMessage]]:
    # Threads are ranked by their newest message, not each message by its own date, so
    # the messages kept are put in date order here.
    oldest = datetime.min.replace(tzinfo=UTC)
    return {
        sender: sorted(messages, key=lambda m: m.date or oldest, reverse=True)[:per_sender]
        for sender, messages in found.items()
    }


def static_verdict(messages: Sequence[MailMessage]) -> str | None:
    """Newsletter or Receipt when the static rules say so of most of the messages.

    A majority, not any one message: a colleague who once forwarded an invoice is not a
    receipt sender. Between the two, a tie goes to Receipt, as in static_category,
    because a receipt is the one to keep in view.
    """
    verdicts = Counter(verdict for m in messages if (verdict := static_category(m)))
    if not verdicts:
        return None
    name, count = max(verdicts.items(), key=lambda item: (item[1], item[0] == RECEIPT))
    return name if count * 2 > len(messages) else None


def _category_name(answer: str | None) -> str | None:
    name = (answer or "").strip()[:CATEGORY_NAME_LENGTH]
    return name or None


# Database ----------------------------------------------------------------------------


def _categorized(account_id: str, senders: Sequence[str]) -> set[str]:
    """The senders among `senders` that already have a category."""
    categorized: set[str] = set()
    with session_scope() as session:
        # Bounded IN lists: SQLite refuses statements with too many parameters.
        for start in range(0, len(senders), 500):
            categorized.update(
                session.scalars(
                    select(Sender.email).where(
                        Sender.email_account_id == account_id,
                        Sender.email.in_(senders[start : start + 500]),
                        Sender.category_id.is_not(None),
                    )
                )
            )
    return categorized


def _save(account_id: str, email: str, category: str) -> bool:
    """Set the sender's category if it has none; False when it had one already."""
    with session_scope() as session:
        category_id = _category_id(session, account_id, category)
        if _set_if_uncategorized(session, account_id, email, category_id):
            return True
        exists = session.scalar(
            select(Sender.id).where(Sender.email_account_id == account_id, Sender.email == email)
        )
        if exists is not None:
            return False  # categorized since we looked: the first category written wins
        try:
            with session.begin_nested():
                session.add(
                    Sender(
                        email_account_id=account_id,
                        email=email,
                        category_id=category_id,
                        categorized_at=utcnow(),
                    )
                )
        except IntegrityError:
            # Another run inserted the sender in the meantime (unique account, email).
            return _set_if_uncategorized(session, account_id, email, category_id)
    return True


def _set_if_uncategorized(session: Session, account_id: str, email: str, category_id: str) -> bool:
    return (
        rows_changed(
            session,
            update(Sender)
            .where(
                Sender.email_account_id == account_id,
                Sender.email == email,
                Sender.category_id.is_(None),
            )
            .values(category_id=category_id, categorized_at=utcnow()),
        )
        == 1
    )


def _category_id(session: Session, account_id: str, name: str) -> str:
    """The account's category of that name (any case), created the first time."""

    def existing() -> str | None:
        return session.scalar(
            select(Category.id)
            .where(
                Category.email_account_id == account_id,
                func.lower(Category.name) == name.lower(),
            )
            .order_by(Category.created_at)
            .limit(1)
        )

    found = existing()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = Category(email_account_id=account_id, name=name)
            session.add(row)
        return row.id
    except IntegrityError:
        # A concurrent batch created it first (unique account, name): use theirs.
        found = existing()
        if found is None:
            raise
        return found


# Progress (Redis) --------------------------------------------------------------------


def _progress_enabled() -> bool:
    if get_settings().redis_url:
        return True
    _say_progress_is_off()
    return False


@cache
def _say_progress_is_off() -> None:
    # Once per process: every batch would otherwise repeat it.
    log.info("REDIS_URL is not set: sender categorization progress is kept nowhere")


def _progress_key(account_id: str) -> str:
    return redis_store.key(redis_store.CATEGORIZE_PROGRESS, account_id)


def _mark_queued(account_id: str, senders: Sequence[str]) -> list[str]:
    """Mark the senders the progress does not know yet; returns those it marked."""
    if not senders or not _progress_enabled():
        return []
    key = _progress_key(account_id)
    with redis_store.client().pipeline(transaction=True) as pipe:
        for sender in senders:
            pipe.hsetnx(key, sender, QUEUED)
        pipe.expire(key, PROGRESS_TTL_SECONDS)
        *fresh, _ = pipe.execute()
    return [sender for sender, new in zip(senders, fresh, strict=True) if new]


def _mark_done(account_id: str, senders: Sequence[str]) -> None:
    """Marking a sender done twice is no change at all: nothing is counted twice."""
    if not senders or not _progress_enabled():
        return
    key = _progress_key(account_id)
    with redis_store.client().pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=dict.fromkeys(senders, DONE))
        pipe.expire(key, PROGRESS_TTL_SECONDS)
        pipe.execute()


def _forget(account_id: str, senders: Sequence[str]) -> None:
    if not senders or not _progress_enabled():
        return
    try:
        redis_store.client().hdel(_progress_key(account_id), *senders)
    except Exception:
        # Best effort on a path that is already failing: the TTL clears it in the end.
        log.warning("could not take back the categorization progress of %s", account_id)
