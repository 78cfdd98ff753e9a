"""Digests and summaries (docs/JOBS.md, "Digests and summaries").

- `ai.digest` summarises one message into a DigestItem on the account's oldest PENDING
  digest. An item is unique per (digest, thread, message), and a message already in a
  digest that went out is not added again, so redelivery adds nothing.
- `resend.digest` claims the account's PENDING digests with a lease and a token (one
  claimant wins), sends one email grouped by rule, then in one transaction marks them
  SENT, redacts the items and advances the schedule. A digest without items is closed
  too: none stays PROCESSING. The email's idempotency key is the set of digests it
  covers, so a resend after a crash sends nothing new.
- `resend.summary` sends the account a summary of its inbox once per period. Its
  payload (`digest_summary`) names the account by `emailAccountId`, or by `email` as the
  replaced app's fan-out did; an address no account has is skipped.
- Two hourly crons fan out: one `resend.digest` per account whose schedule is due, and
  one `resend.summary` per account due a summary (payload `{emailAccountId}`).

Both go to the user the way tasks/mail/digest_mailer.py chooses (Resend, SMTP_URL, or
their own mailbox, sent to themselves), from the display name DIGEST_SENDER_NAME:
`ai.digest` skips mail from that sender, so a DIGEST rule can never digest a digest.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from bridge.outcome import Delivery, Result, done, skipped
from bridge.payload import Id, Payload
from bridge.publishing import enqueue_many
from bridge.store.db import rows_changed, session_scope
from tasks.accounts import mailbox_of
from tasks.ai import default_ai
from tasks.jobs.digest_message import DigestMessage, message_to_summarise
from tasks.jobs.digest_summary import SendSummary, summary_account_id
from tasks.mail.digest_mailer import digest_mailer
from tasks.mail.port import OutgoingMail
from tasks.models import (
    Digest,
    DigestItem,
    DigestStatus,
    EmailAccount,
    Rule,
    RuleAction,
    SummaryFrequency,
    utcnow,
)
from tasks.shim import registry

DIGEST_SENDER_NAME = "jobbridge digest"
DIGEST_LEASE = timedelta(minutes=10)
SUMMARY_PERIOD = {
    SummaryFrequency.DAILY: timedelta(days=1),
    SummaryFrequency.WEEKLY: timedelta(days=7),
}
DIGEST_EVENT = "inbox-zero/resend.digest"
SUMMARY_EVENT = "inbox-zero/resend.summary"


class AddToDigest(Payload):
    email_account_id: Id
    action_id: Id | None = None
    cold_email_id: Id | None = None
    message: DigestMessage


class SendDigest(Payload):
    email_account_id: Id
    force: bool = False


def is_digest_email(sender: str, account_email: str) -> bool:
    name, address = parseaddr(sender)
    ours = {account_email.lower(), digest_mailer().sender_address(account_email).lower()}
    return name == DIGEST_SENDER_NAME and address.lower() in ours


@registry.job(
    event="inbox-zero/ai.digest",
    route="/api/ai/digest",
    payload=AddToDigest,
    # The replaced app's limits for this job: a one-message summary needs no more.
    concurrency=2,
    timeout_seconds=120,
    retries=3,
)
def add_to_digest(payload: AddToDigest, delivery: Delivery) -> Result:
    account, mail = mailbox_of(payload.email_account_id)
    message = message_to_summarise(account, payload.message, mail)
    if message is None:
        return skipped("message no longer exists")
    if is_digest_email(message.sender, account.email):
        return skipped("mail from the digest sender itself")
    summary = default_ai().summarize(message)
    if not summary:
        return skipped("nothing worth summarising")
    with session_scope() as session:
        existing = session.scalars(
            select(DigestItem.id)
            .join(Digest, Digest.id == DigestItem.digest_id)
            .where(
                Digest.email_account_id == account.id,
                DigestItem.message_id == message.id,
                DigestItem.thread_id == message.thread_id,
            )
        ).first()
    if existing is not None:
        return skipped("message is already in a digest")
    digest_id = _open_digest(account.id)
    try:
        with session_scope() as session:
            session.add(
                DigestItem(
                    digest_id=digest_id,
                    message_id=message.id,
                    thread_id=message.thread_id,
                    action_id=payload.action_id,
                    cold_email_id=payload.cold_email_id,
                    rule_name=_rule_name(payload.action_id),
                    sender=message.sender,
                    subject=message.subject,
                    content=summary,
                )
            )
    except IntegrityError:
        return skipped("a concurrent delivery added it")
    return done(f"added to digest {digest_id}")


def _open_digest(account_id: str) -> str:
    """The account's oldest PENDING digest, created when there is none."""
    with session_scope() as session:
        found = session.scalar(
            select(Digest.id)
            .where(Digest.email_account_id == account_id, Digest.status == DigestStatus.PENDING)
            .order_by(Digest.created_at)
            .limit(1)
        )
        if found is not None:
            return found
        digest = Digest(email_account_id=account_id, status=DigestStatus.PENDING)
        session.add(digest)
        session.flush()
        return digest.id


def _rule_name(action_id: str | None) -> str | None:
    if action_id is None:
        return None
    with session_scope() as session:
        return session.scalar(
            select(Rule.name)
            .join(RuleAction, RuleAction.rule_id == Rule.id)
            .where(RuleAction.id == action_id)
        )


@registry.job(event=DIGEST_EVENT, route="/api/resend/digest", payload=SendDigest, retries=3)
def send_digest(payload: SendDigest, delivery: Delivery) -> Result:
    account, mail = mailbox_of(payload.email_account_id)
    now = utcnow()
    if not payload.force and not _digest_due(account, now):
        return skipped("digest not due yet")
    token = uuid.uuid4().hex
    claimed, took_over = _claim_digests(account.id, token, now)
    # A lapsed claim's digests are sent (or found sent) alone: the account's schedule
    # stays where it is, so its PENDING digests go out at the next fan-out.
    account_to_advance = None if took_over else account
    if not claimed:
        return skipped("no pending digest")
    with session_scope() as session:
        items = list(
            session.scalars(
                select(DigestItem)
                .where(DigestItem.digest_id.in_(claimed), DigestItem.content.is_not(None))
                .order_by(DigestItem.created_at)
            )
        )
    if not items:
        _finish(
            claimed, token, DigestStatus.SENT, account_to_advance, now, error="no items to send"
        )
        return skipped("digest had no items")
    subject = f"Your digest: {len(items)} email{'s' if len(items) != 1 else ''}"
    text, body_html = render_digest(items)
    key = "digest-" + hashlib.sha256(",".join(sorted(claimed)).encode()).hexdigest()[:24]
    email = OutgoingMail(
        to=account.email,
        from_name=DIGEST_SENDER_NAME,
        subject=subject,
        body=text,
        html=body_html,
        idempotency_key=key,
    )
    try:
        digest_mailer().send(account, email, mail)
    except Exception as error:
        last = delivery.attempt >= send_digest.retries
        # Handed back for the next attempt; FAILED once the attempts are used up.
        _finish(
            claimed,
            token,
            DigestStatus.FAILED if last else DigestStatus.PENDING,
            None,
            now,
            error=f"{type(error).__name__}: {error}",
        )
        raise
    _finish(claimed, token, DigestStatus.SENT, account_to_advance, now, error=None)
    return done(f"sent {len(items)} items from {len(claimed)} digests")


def _digest_due(account: EmailAccount, now: datetime) -> bool:
    return account.digest_interval_days is not None and (
        account.digest_next_at is None or account.digest_next_at <= now
    )


def _claim_digests(account_id: str, token: str, now: datetime) -> tuple[list[str], bool]:
    """The account's PENDING digests, or, where a run's claim lapsed (it may have sent
    them and died before saying so), that claim's digests alone: the same digests make
    the same idempotency key, so the email is not sent again with newer items added.
    The ids claimed, and whether they were a lapsed claim's."""
    lapsed = and_(Digest.status == DigestStatus.PROCESSING, Digest.lease_expires_at < now)
    with session_scope() as session:
        dead_claim = session.scalar(
            select(Digest.claim_token)
            .where(Digest.email_account_id == account_id, lapsed)
            .order_by(Digest.lease_expires_at)
            .limit(1)
        )
        taken = (
            and_(lapsed, Digest.claim_token == dead_claim)
            if dead_claim is not None
            else Digest.status == DigestStatus.PENDING
        )
        rows_changed(
            session,
            update(Digest)
            .where(Digest.email_account_id == account_id, taken)
            .values(
                status=DigestStatus.PROCESSING,
                claim_token=token,
                lease_expires_at=now + DIGEST_LEASE,
            ),
        )
        claimed = list(session.scalars(select(Digest.id).where(Digest.claim_token == token)))
        return claimed, dead_claim is not None


def _finish(
    claimed: list[str],
    token: str,
    status: DigestStatus,
    account: EmailAccount | None,
    now: datetime,
    error: str | None,
) -> None:
    """One transaction: the digests' new status (only while our claim holds), items
    redacted once sent, and the account's schedule advanced past now."""
    with session_scope() as session:
        mine = and_(Digest.id.in_(claimed), Digest.claim_token == token)
        values: dict[str, Any] = {"status": status, "lease_expires_at": None, "error": error}
        if status is DigestStatus.SENT:
            values["sent_at"] = now
        session.execute(update(Digest).where(mine).values(values))
        if status is DigestStatus.SENT:
            session.execute(
                update(DigestItem).where(DigestItem.digest_id.in_(claimed)).values(content=None)
            )
        if account is not None and status is DigestStatus.SENT and account.digest_interval_days:
            row = session.get(EmailAccount, account.id)
            if row is not None and row.digest_interval_days:
                step = timedelta(days=row.digest_interval_days)
                following = row.digest_next_at or now
                while following <= now:
                    following += step
                row.digest_next_at = following


def render_digest(items: list[DigestItem]) -> tuple[str, str]:
    """Plain text and HTML of one digest email, items grouped by the rule that added them."""
    groups: dict[str, list[DigestItem]] = defaultdict(list)
    for item in items:
        groups[item.rule_name or "Other"].append(item)
    text_lines: list[str] = []
    html_parts = ["<html><body><h1>Your digest</h1>"]
    for name in sorted(groups):
        text_lines.append(f"== {name} ==")
        html_parts.append(f"<h2>{html.escape(name)}</h2><ul>")
        for item in groups[name]:
            text_lines.append(f"- {item.subject} ({item.sender}): {item.content}")
            html_parts.append(
                f"<li><b>{html.escape(item.subject)}</b> <i>{html.escape(item.sender)}</i>"
                f"<br>{html.escape(item.content or '')}</li>"
            )
        html_parts.append("</ul>")
        text_lines.append("")
    html_parts.append("</body></html>")
    return "\n".join(text_lines).strip() + "\n", "".join(html_parts)


@registry.job(event=SUMMARY_EVENT, route="/api/resend/summary", payload=SendSummary, retries=3)
def send_summary(payload: SendSummary, delivery: Delivery) -> Result:
    account_id = summary_account_id(payload)
    if account_id is None:  # an `email` no account has (an unknown id fails, in mailbox_of)
        return skipped(f"no account has the address {payload.email!r}")
    account, mail = mailbox_of(account_id)
    now = utcnow()
    if account.summary_frequency is None:
        return skipped("account has no summary frequency")
    period = SUMMARY_PERIOD[account.summary_frequency]
    if account.last_summary_at is not None and account.last_summary_at > now - period:
        return skipped("summary already sent this period")
    page = mail.list_threads(after=now - period, unread_only=True, page_size=100)
    senders: dict[str, int] = defaultdict(int)
    for thread_id in page.thread_ids:
        newest = mail.get_thread(thread_id)[-1]
        senders[parseaddr(newest.sender)[1] or newest.sender] += 1
    top = sorted(senders.items(), key=lambda pair: (-pair[1], pair[0]))[:5]
    more = "+" if page.next_page_token else ""
    lines = [f"{len(page.thread_ids)}{more} unread threads in the last {period.days} day(s)."]
    lines += [f"- {sender}: {count}" for sender, count in top]
    # One email per account and period, however often this is delivered: the period
    # after the last summary, or the account's first (a key that does not move with now).
    since = account.last_summary_at
    period_key = str(int(since.timestamp())) if since is not None else "first"
    email = OutgoingMail(
        to=account.email,
        from_name=DIGEST_SENDER_NAME,
        subject="Your inbox summary",
        body="\n".join(lines) + "\n",
        idempotency_key=f"summary-{account.id}-{period_key}",
    )
    digest_mailer().send(account, email, mail)
    with session_scope() as session:
        session.execute(
            update(EmailAccount).where(EmailAccount.id == account.id).values(last_summary_at=now)
        )
    return done(f"summary of {len(page.thread_ids)} unread threads")


def fan_out_id(kind: str, account_id: str, now: datetime) -> str:
    """The dedup id of one account's job from an hourly fan-out: it names the hour the run
    covers, so the next hour's run is new work to every provider (Inngest drops a repeated
    event id for 24 hours) even when this hour's job found nothing to do."""
    return f"{kind}-{account_id}-{int(now.timestamp()) // 3600}"


@registry.cron(name="resend.digest-all", cron="0 * * * *", route="/api/resend/digest/all")
def enqueue_due_digests(now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    with session_scope() as session:
        due = list(
            session.scalars(
                select(EmailAccount.id).where(
                    EmailAccount.digest_interval_days.is_not(None),
                    or_(EmailAccount.digest_next_at.is_(None), EmailAccount.digest_next_at <= now),
                )
            )
        )
    payloads = [SendDigest(email_account_id=account_id) for account_id in due]
    ids = [fan_out_id("digest", account_id, now) for account_id in due]
    enqueue_many(send_digest, payloads, dedup_ids=ids)
    return {"enqueued": len(payloads)}


@registry.cron(name="resend.summary-all", cron="0 * * * *", route="/api/resend/summary/all")
def enqueue_due_summaries(now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    due: list[str] = []
    with session_scope() as session:
        rows = session.execute(
            select(
                EmailAccount.id, EmailAccount.summary_frequency, EmailAccount.last_summary_at
            ).where(EmailAccount.summary_frequency.is_not(None))
        )
        for account_id, frequency, last in rows:
            if frequency is None:
                continue
            if last is None or last <= now - SUMMARY_PERIOD[frequency]:
                due.append(account_id)
    payloads = [SendSummary(email_account_id=account_id) for account_id in due]
    ids = [fan_out_id("summary", account_id, now) for account_id in due]
    enqueue_many(send_summary, payloads, dedup_ids=ids)
    return {"enqueued": len(payloads)}
