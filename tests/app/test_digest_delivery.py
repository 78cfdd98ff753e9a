"""Digests and summaries through Resend, when RESEND_API_KEY is set: what is posted, once
per idempotency key however often the job runs, and what each of Resend's refusals means.
Without RESEND_API_KEY or SMTP_URL they go through the account's own mailbox, as the
digest tests (tests/app/test_digest.py) run; SMTP_URL is test_digest_delivery_smtp.py.

Resend is a double of its API (tests/support/fake_resend.py) that answers as Resend
documents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import update

from bridge.core import run_job
from bridge.outcome import Delivery, Outcome, PermanentError, RetryLater
from bridge.store.db import session_scope
from tasks.accounts import account_or_fail
from tasks.jobs import digest
from tasks.mail.digest_mailer import digest_mailer
from tasks.mail.port import OutgoingMail
from tasks.mail.resend_relay import RETRY_SECONDS
from tasks.models import DigestStatus, EmailAccount, SummaryFrequency
from tests.conftest import Mailbox
from tests.support.delivery import (
    clear_delivery_environment,
    digest_key,
    digest_statuses,
    send_digest_now,
)
from tests.support.digests import add_pending_digest
from tests.support.fake_resend import FakeResend

RESEND_KEY = "re_test_0123456789abcdef"
RESEND_FROM = "digest@mail.example.test"
DIGEST_FROM_NAME = digest.DIGEST_SENDER_NAME


@pytest.fixture(autouse=True)
def no_delivery_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_delivery_environment(monkeypatch, tmp_path)


@pytest.fixture
def resend(router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> FakeResend:
    """Resend is configured, and its API is the double."""
    monkeypatch.setenv("RESEND_API_KEY", RESEND_KEY)
    monkeypatch.setenv("RESEND_FROM", RESEND_FROM)
    return FakeResend(router)


def send_with_the_mailer(mailbox: Mailbox, key: str = "digest-once") -> str:
    mail = OutgoingMail(to=mailbox.email, subject="Digest", body="Two.", idempotency_key=key)
    account = account_or_fail(mailbox.account_id)
    return digest_mailer().send(account, mail, mailbox.provider())


def test_without_resend_or_smtp_url_the_digest_goes_through_the_own_mailbox(
    mailbox: Mailbox, router: respx.MockRouter
) -> None:
    add_pending_digest(mailbox.account_id)

    assert send_digest_now(mailbox.account_id).outcome is Outcome.DONE

    assert len(mailbox.folder_keys("Sent")) == 1
    assert not router.calls  # nothing went to Resend (or any other API)


def test_the_digest_is_posted_to_resend_with_the_key_and_the_digests_key(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    digest_id = add_pending_digest(mailbox.account_id)

    assert send_digest_now(mailbox.account_id).outcome is Outcome.DONE

    (request,) = resend.requests
    assert request.headers["Authorization"] == f"Bearer {RESEND_KEY}"
    assert request.headers["Idempotency-Key"] == digest_key(digest_id)


def test_the_digest_posted_to_resend_comes_from_resend_from_with_both_bodies(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    digest_id = add_pending_digest(mailbox.account_id)

    send_digest_now(mailbox.account_id)

    (body,) = [json.loads(request.content) for request in resend.requests]
    assert body["from"] == f"{DIGEST_FROM_NAME} <{RESEND_FROM}>"
    assert (body["to"], body["subject"]) == ([mailbox.email], "Your digest: 1 email")
    assert "Order shipped" in body["text"] and "<h1>Your digest</h1>" in body["html"]
    assert body["headers"] == {"X-Entity-Ref-ID": digest_key(digest_id)}


def test_a_digest_sent_through_resend_leaves_the_own_mailbox_alone(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    add_pending_digest(mailbox.account_id)

    send_digest_now(mailbox.account_id)

    assert len(resend.sent) == 1
    assert mailbox.folder_keys("Sent") == set()


def test_two_sends_with_one_key_post_to_resend_once_and_give_one_id(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    first = send_with_the_mailer(mailbox)
    second = send_with_the_mailer(mailbox)

    assert first == second
    assert len(resend.requests) == 1


def test_a_rate_limited_digest_is_retried_after_resends_retry_after_and_stays_pending(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    add_pending_digest(mailbox.account_id)
    resend.fail_next(429, "rate_limit_exceeded", "Too many requests", {"Retry-After": "17"})

    result = send_digest_now(mailbox.account_id)

    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 17)
    assert digest_statuses() == [DigestStatus.PENDING]


def test_a_failing_resend_without_retry_after_is_retried_after_the_default_wait(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    resend.fail_next(500, "application_error", "Something went wrong")

    with pytest.raises(RetryLater) as raised:
        send_with_the_mailer(mailbox)

    assert raised.value.retry_after == RETRY_SECONDS


def test_a_resend_that_cannot_be_reached_is_retried_after_the_default_wait(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    resend.route.side_effect = httpx.ConnectError("connection refused")

    with pytest.raises(RetryLater, match="cannot reach Resend") as raised:
        send_with_the_mailer(mailbox)

    assert raised.value.retry_after == RETRY_SECONDS


def test_a_send_that_failed_posts_again_on_the_retry(mailbox: Mailbox, resend: FakeResend) -> None:
    resend.fail_next(503, "application_error", "Service unavailable")
    with pytest.raises(RetryLater):
        send_with_the_mailer(mailbox)

    send_with_the_mailer(mailbox)

    assert (len(resend.requests), len(resend.sent)) == (2, 1)


@pytest.mark.parametrize(
    ("status", "name"), [(401, "missing_api_key"), (403, "invalid_api_key")], ids=str
)
def test_a_refused_key_fails_the_digest_naming_resend_api_key_but_not_the_key(
    mailbox: Mailbox, resend: FakeResend, status: int, name: str
) -> None:
    add_pending_digest(mailbox.account_id)
    resend.fail_next(status, name, "API key is invalid")

    result = send_digest_now(mailbox.account_id)

    assert result.outcome is Outcome.FAILED
    assert "RESEND_API_KEY" in result.detail
    assert RESEND_KEY not in result.detail


def test_a_domain_resend_has_not_verified_is_named_as_resend_from(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    resend.fail_next(403, "validation_error", "The mail.example.test domain is not verified")

    with pytest.raises(PermanentError, match=f"RESEND_FROM {RESEND_FROM}"):
        send_with_the_mailer(mailbox)


def test_a_key_resend_already_used_with_another_body_counts_as_sent(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    # What a summary re-rendered after a crash meets: Resend sent the key's email before.
    resend.fail_next(409, "invalid_idempotent_request", "Same key, different payload")

    send_with_the_mailer(mailbox)
    send_with_the_mailer(mailbox)

    assert len(resend.requests) == 1


def test_the_summary_is_posted_to_resend_with_the_summarys_key(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    with session_scope() as session:
        session.execute(
            update(EmailAccount)
            .where(EmailAccount.id == mailbox.account_id)
            .values(summary_frequency=SummaryFrequency.DAILY)
        )

    payload = {"emailAccountId": mailbox.account_id}
    result = run_job(digest.send_summary, payload, Delivery("test", "d", 0))

    assert result.outcome is Outcome.DONE
    (request,) = resend.requests
    assert request.headers["Idempotency-Key"].startswith(f"summary-{mailbox.account_id}-")
    body = json.loads(request.content)
    assert body["subject"] == "Your inbox summary" and "3 unread threads" in body["text"]


def test_ai_digest_skips_a_digest_that_came_from_resend_from(
    mailbox: Mailbox, resend: FakeResend
) -> None:
    message: dict[str, Any] = {
        "id": "m1",
        "threadId": "t1",
        "from": f'"{DIGEST_FROM_NAME}" <{RESEND_FROM}>',
        "subject": "Your digest: 3 emails",
        "content": "Three orders shipped today, and a newsletter about gardening.",
    }
    payload = {"emailAccountId": mailbox.account_id, "message": message}

    result = run_job(digest.add_to_digest, payload, Delivery("test", "d", 0))

    assert result.outcome is Outcome.SKIPPED
