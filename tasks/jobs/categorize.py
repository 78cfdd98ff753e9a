"""Categorize senders: give each sender an account hears from a category
(docs/JOBS.md, "Categorizing senders").

`categorize_senders` (the producer) leaves out entries that are no usable address
(`categorize_addresses`; counted in `Queued.unusable`), drops duplicates and senders
already categorized, publishes the rest in chunks of 50 with one `enqueue_many`, and
marks them queued in the account's progress.

Each `categorize.senders-batch` run takes any strings (the replaced app sent "" for a
From line it could not parse, and repeated addresses), normalises them the same way,
leaves out the unusable ones and names them in its detail (skipped when none is left),
then reads a few recent messages per sender, decides its category with the static rules
(Newsletter, Receipt) and asks the AI only about the rest, then writes the Sender's
category, creating the Category row the first time a name is used. Nothing is written
until a category is known: no "unknown" placeholder is written to be overwritten later,
and a sender the AI cannot place stays uncategorized, yet counts as done.

Idempotent: a sender that already has a category is skipped (so a redelivered batch
asks the AI nothing again and the first category written wins); the Sender row is
unique per (account, email) and only a NULL category is ever set; the Category row is
unique per (account, name). Progress is one Redis hash per account, sender -> queued
or done, so marking a sender done twice changes nothing: the totals are counts of
distinct senders, not counters a retry could bump twice.

This module holds the producer and the job; the Sender and Category rows are written
in `categorize_records`, the progress kept in `categorize_progress` (`progress` is
exported here).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from bridge.outcome import Delivery, Result, done, skipped
from bridge.payload import Id, Payload
from bridge.publishing import enqueue_many, validate
from tasks.accounts import account_or_fail, mailbox_of
from tasks.ai import AI, default_ai
from tasks.ai.static_rules import RECEIPT, sender_address, static_category
from tasks.jobs.categorize_addresses import describe_unusable, sort_senders
from tasks.jobs.categorize_progress import forget, mark_done, mark_queued, progress
from tasks.jobs.categorize_records import categorized, save
from tasks.mail.port import MailMessage, MailProvider, MessageNotFound
from tasks.shim import registry

BATCH_EVENT = "inbox-zero/categorize.senders-batch"
CHUNK_SIZE = 50  # senders per job: what the payload accepts
MESSAGES_PER_SENDER = 3  # enough for a verdict, few enough to keep an AI prompt small
# The mail port cannot search by sender, so a batch scans the newest inbox threads for
# its senders' mail. The bound keeps one run's cost fixed however large the mailbox; a
# sender not seen within it has no recent mail to judge and stays uncategorized.
SCAN_FOLDER = "INBOX"
SCAN_PAGE_SIZE = 25
MAX_SCANNED_THREADS = 250
CATEGORY_NAME_LENGTH = 100  # Category.name's column
SENDER_ENTRY_LENGTH = 4096  # one entry: far more than any From line, a bound on junk


def _sender_entry(value: Any) -> str:
    # Any JSON string, as the replaced app's `z.array(z.string())` took, lone surrogates
    # included (pydantic's str would refuse those): the job judges each entry, and one it
    # cannot use is left out instead of failing the batch. Only the length is bounded.
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if len(value) > SENDER_ENTRY_LENGTH:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters",
            {"max_length": SENDER_ENTRY_LENGTH},
        )
    return value


SenderEntry = Annotated[
    str,
    PlainValidator(_sender_entry),
    WithJsonSchema({"type": "string", "maxLength": SENDER_ENTRY_LENGTH}),
]


class CategorizeSendersBatch(Payload):
    email_account_id: Id
    senders: list[SenderEntry] = Field(max_length=CHUNK_SIZE)


@dataclass(frozen=True)
class Queued:
    """What the producer did: jobs published, senders in them, senders left out (already
    categorized, or distinct entries that are no usable address)."""

    chunks: int
    senders: int
    already_categorized: int
    unusable: int = 0


# Producer ----------------------------------------------------------------------------


def categorize_senders(email_account_id: str, senders: Iterable[str]) -> Queued:
    """Queue every distinct, not yet categorized sender, 50 to a job, in one publish.

    Entries that are no usable address (`usable_sender`: "", "Ann <a@b>", ...) are left
    out and counted, never raised about. Dedup ids come from the account and the chunk's
    content, and senders are sorted before chunking, so calling this twice with the same
    senders publishes the same jobs under the same ids (a double click is one run where
    the provider dedups).
    """
    account_or_fail(email_account_id)
    entries = sort_senders(senders)
    wanted = sorted(entries.usable)
    already = categorized(email_account_id, wanted)
    todo = [sender for sender in wanted if sender not in already]
    if not todo:
        return Queued(0, 0, len(already), len(entries.unusable))
    chunks = [todo[start : start + CHUNK_SIZE] for start in range(0, len(todo), CHUNK_SIZE)]
    # Validated as wire data before anything is marked or sent, as for any other job.
    payloads = [
        validate(categorize_senders_batch, {"emailAccountId": email_account_id, "senders": chunk})
        for chunk in chunks
    ]
    # Marked before the publish, so a job that finishes at once is not followed by a
    # late "queued". Only senders the progress does not know yet are marked: one done in
    # this hour stays done (a deduplicated chunk runs no new job to mark it again). A
    # failed publish takes its marks back, so no progress waits for a job never sent.
    marked = mark_queued(email_account_id, todo)
    try:
        receipts = enqueue_many(
            categorize_senders_batch,
            payloads,
            dedup_ids=[_dedup_id(email_account_id, chunk) for chunk in chunks],
        )
    except Exception:
        forget(email_account_id, marked)
        raise
    fresh = [
        chunk for chunk, receipt in zip(chunks, receipts, strict=True) if not receipt.deduplicated
    ]
    return Queued(len(fresh), sum(map(len, fresh)), len(already), len(entries.unusable))


def _normal(sender: str) -> str:
    return sender.strip().lower()


def _dedup_id(account_id: str, chunk: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:32]
    return f"categorize-{account_id}-{digest}"


# The job -----------------------------------------------------------------------------


@registry.job(
    event=BATCH_EVENT,
    route="/api/user/categorize/senders/batch",
    # The replaced app's QStash messages went here (its event-to-path mapping turned only
    # the first dot into a slash); served so that those still queued are delivered.
    legacy_routes=("/api/categorize/senders-batch",),
    payload=CategorizeSendersBatch,
    concurrency=3,
    retries=3,
)
def categorize_senders_batch(payload: CategorizeSendersBatch, delivery: Delivery) -> Result:
    account, mail = mailbox_of(payload.email_account_id)
    # Normalised, each once (a duplicate would be asked about twice); entries that are no
    # usable address are left out and named in the detail.
    entries = sort_senders(payload.senders)
    left_out = describe_unusable(entries.unusable)
    senders = entries.usable
    if not senders:
        return skipped(left_out or "no senders in the batch")
    # Senders categorized by an earlier delivery of this batch, another batch or the
    # user: skipped, so a redelivery repeats no AI call and never changes a category.
    already = categorized(account.id, senders)
    todo = [sender for sender in senders if sender not in already]
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
        tally[how if save(account.id, sender, name) else "raced"] += 1
    # Every sender of the batch is done, the skipped and uncategorized ones included; a
    # crash before this line leaves them to the redelivery, which marks them all.
    mark_done(account.id, senders)
    return done(
        f"{tally['rules']} by rules, {tally['ai']} by AI, {tally['uncategorized']} "
        f"uncategorized, {len(senders) - len(todo) + tally['raced']} already categorized"
        + (f"; {left_out}" if left_out else "")
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


__all__ = [
    "BATCH_EVENT",
    "CHUNK_SIZE",
    "SENDER_ENTRY_LENGTH",
    "CategorizeSendersBatch",
    "Queued",
    "categorize_senders",
    "categorize_senders_batch",
    "progress",
    "recent_messages_from",
    "static_verdict",
]
