"""Sending once per idempotency key through a relay that may not know the key.

SMTP has no idempotency at all, and Resend keeps a key for 24 hours only, while a digest
job may be redelivered after a crash or retried later than that. The Maildir adapter
needs none of this: it finds the sent copy in Sent under the key, and writes it as it
sends. The IMAP adapter appends its copy after SMTP took the email, which may fail on
its own; Gmail and Microsoft Graph may replace the Message-ID that carries the key: so
their adapters use this record too (`mailbox_key`, per account). A relay has
no Sent folder at all, so the record is a row of `sent_mail`, in the database rather
than in Redis: it is what makes the send once, not an optimisation, so it lives with the
digests it guards, durably and transactionally, and works without REDIS_URL too.

A sender claims the key (a row with its token and a lease), sends, then marks the row
sent. A second sender finds the row: sent, it returns the first one's id without sending;
still claimed, it is told to come back when the lease ends (RetryLater); claimed by a
sender that died (the lease is over), it takes the claim over and sends. A failed send
deletes the claim, so the retry sends. One window is left: a sender that dies after the
relay accepted the email and before the row says so lets a later sender send it again;
Resend's own Idempotency-Key closes that window for 24 hours, SMTP cannot.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, delete, update
from sqlalchemy.exc import IntegrityError

from bridge.outcome import RetryLater
from bridge.store.db import rows_changed, session_scope
from tasks.models import SentMail, utcnow

log = logging.getLogger("jobbridge.mail")

# Longer than one send can take (every SMTP step may take its 30 s timeout), shorter
# than a job's retry is worth waiting for.
LEASE = timedelta(minutes=5)
# Longer than any redelivery of a job comes (a QStash message is retried for days).
RETENTION = timedelta(days=30)


def mailbox_key(address: str, key: str) -> str:
    """The record's key for a send from one mailbox: keys are unique per account only."""
    return "mailbox-" + hashlib.sha256(f"{address.lower()}\n{key}".encode()).hexdigest()


def send_once(key: str, transport: str, send: Callable[[], str]) -> str:
    """`send()` unless a send with `key` went out before; the id of the email either way."""
    token = uuid.uuid4().hex
    sent_id = _claim(key, transport, token)
    if sent_id is not None:
        return sent_id
    try:
        provider_id = send()
    except BaseException:
        _release(key, token)
        raise
    _mark_sent(key, token, provider_id)
    return provider_id


def _claim(key: str, transport: str, token: str) -> str | None:
    """Claim the key for this sender and return None, or return the id it was sent with."""
    for _ in range(3):  # a claim released between our two looks is claimed again
        now = utcnow()
        try:
            with session_scope() as session:
                session.add(
                    SentMail(
                        idempotency_key=key,
                        transport=transport,
                        claim_token=token,
                        lease_expires_at=now + LEASE,
                    )
                )
            return None
        except IntegrityError:
            pass  # a row for the key is there: sent, being sent, or left by a dead sender
        with session_scope() as session:
            taken_over = rows_changed(
                session,
                update(SentMail)
                .where(
                    SentMail.idempotency_key == key,
                    SentMail.sent_at.is_(None),
                    SentMail.lease_expires_at < now,
                )
                .values(claim_token=token, lease_expires_at=now + LEASE, transport=transport),
            )
            row = None if taken_over else session.get(SentMail, key)
        if taken_over:
            log.warning("send of %s by a sender whose lease ended: sending it again", key)
            return None
        if row is None:
            continue
        if row.sent_at is not None:
            return row.provider_id or key
        wait = (row.lease_expires_at or now) - now
        raise RetryLater(f"{key} is being sent by another run", max(wait.total_seconds(), 1))
    raise RetryLater(f"{key}: other runs keep claiming and releasing it", LEASE.total_seconds())


def _mark_sent(key: str, token: str, provider_id: str) -> None:
    now = utcnow()
    with session_scope() as session:
        mine = rows_changed(
            session,
            update(SentMail)
            .where(SentMail.idempotency_key == key, SentMail.claim_token == token)
            .values(provider_id=provider_id, sent_at=now, claim_token=None, lease_expires_at=None),
        )
        # Rows of keys no redelivery will bring again: the table stays small.
        session.execute(delete(SentMail).where(SentMail.created_at < now - RETENTION))
    if not mine:  # our lease ended mid-send and another sender took the key over
        log.warning("%s was sent after its claim's lease ended: it may go out twice", key)


def _release(key: str, token: str) -> None:
    with session_scope() as session:
        session.execute(
            delete(SentMail).where(
                and_(SentMail.idempotency_key == key, SentMail.claim_token == token)
            )
        )
