"""Digest rows written straight to the database: what `ai.digest` leaves for a sender."""

from __future__ import annotations

from bridge.store.db import session_scope
from tasks.models import Digest, DigestItem, DigestStatus


def add_pending_digest(account_id: str, content: str = "On its way.") -> str:
    """A PENDING digest with one item to send; returns the digest's id."""
    with session_scope() as session:
        digest = Digest(email_account_id=account_id, status=DigestStatus.PENDING)
        session.add(digest)
        session.flush()
        session.add(
            DigestItem(
                digest_id=digest.id,
                message_id="m1",
                thread_id="t1",
                sender="shop@example.test",
                subject="Order shipped",
                content=content,
            )
        )
        return digest.id
