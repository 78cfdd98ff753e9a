"""What the digest delivery tests share: a clean delivery environment, running the
digest job now, and the digest's idempotency key as send_digest makes it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.core import run_job
from bridge.outcome import Delivery, Result
from bridge.store.db import session_scope
from tasks.jobs import digest
from tasks.mail.delivery_settings import DeliverySettings
from tasks.models import Digest, DigestStatus


def clear_delivery_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RESEND_* or SMTP_* variable, from the environment or a .env file."""
    monkeypatch.chdir(tmp_path)  # no .env
    for name in DeliverySettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def send_digest_now(account_id: str) -> Result:
    payload = {"emailAccountId": account_id, "force": True}
    return run_job(digest.send_digest, payload, Delivery("test", "d", 0))


def digest_key(*digest_ids: str) -> str:
    """The idempotency key send_digest gives the email: the set of digests it covers."""
    return "digest-" + hashlib.sha256(",".join(sorted(digest_ids)).encode()).hexdigest()[:24]


def digest_statuses() -> list[DigestStatus]:
    with session_scope() as session:
        return list(session.scalars(select(Digest.status)))
