"""Digests through the SMTP server of SMTP_URL (when RESEND_API_KEY is not set): they
arrive in the user's inbox once however often the job runs, from SMTP_FROM or the
account's own address, after a login when the URL has a user; each refusal is named.

The suite's real SMTP server delivers to a real Dovecot user; a second server on
loopback (tests/support/login_smtp_server.py) takes mail only after a login.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import select, update

from bridge.outcome import Outcome
from bridge.store.db import session_scope
from tasks.demo import add_account
from tasks.jobs import digest
from tasks.models import Digest, DigestStatus, EmailAccount, SentMail, utcnow
from tests.conftest import ImapUser, Mailbox
from tests.support.delivery import clear_delivery_environment, digest_statuses, send_digest_now
from tests.support.digests import add_pending_digest
from tests.support.login_smtp_server import LoginSmtpServer
from tests.support.services import free_port
from tests.support.smtp_server import SmtpServer

DIGEST_FROM_NAME = digest.DIGEST_SENDER_NAME
# aiosmtpd warns of a login without TLS, which is what the login server is for.
LOGIN_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(autouse=True)
def no_delivery_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_delivery_environment(monkeypatch, tmp_path)


@pytest.fixture
def smtp_url(smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """SMTP_URL names the suite's SMTP server (plain text: it is on this machine)."""
    url = f"smtp://{smtp_server.host}:{smtp_server.port}"
    monkeypatch.setenv("SMTP_URL", url)
    return url


@pytest.fixture
def login_server() -> Iterator[LoginSmtpServer]:
    """An SMTP server that takes mail only after the login of ana, password "pass word@1"."""
    server = LoginSmtpServer("ana", "pass word@1")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def user_account(imap_user: ImapUser, tmp_path: Path) -> EmailAccount:
    """An account whose address is a real Dovecot user's (its own mailbox a Maildir)."""
    return add_account(imap_user.address, tmp_path / "maildir")


def inbox_count(user: ImapUser, subject: str) -> int:
    with IMAPClient(user.host, port=user.port, ssl=False, timeout=10) as client:
        client.login(user.username, user.password)
        client.select_folder("INBOX", readonly=True)
        return len(client.search(["SUBJECT", subject]))


def test_with_smtp_url_the_digest_arrives_in_the_users_inbox(
    user_account: EmailAccount, imap_user: ImapUser, smtp_url: str
) -> None:
    add_pending_digest(user_account.id)

    assert send_digest_now(user_account.id).outcome is Outcome.DONE

    assert inbox_count(imap_user, "Your digest") == 1


def test_without_smtp_from_the_digest_comes_from_the_accounts_own_address(
    user_account: EmailAccount, imap_user: ImapUser, smtp_server: SmtpServer, smtp_url: str
) -> None:
    add_pending_digest(user_account.id)

    send_digest_now(user_account.id)

    (received,) = smtp_server.messages_to(imap_user.address)
    message = email.message_from_bytes(received.data, policy=default_policy)
    assert message["From"] == f"{DIGEST_FROM_NAME} <{imap_user.address}>"
    assert received.mail_from == imap_user.address


def test_smtp_from_is_the_sender_of_digests_through_smtp(
    user_account: EmailAccount,
    imap_user: ImapUser,
    smtp_server: SmtpServer,
    smtp_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_FROM", "digests@example.test")
    add_pending_digest(user_account.id)

    send_digest_now(user_account.id)

    (received,) = smtp_server.messages_to(imap_user.address)
    message = email.message_from_bytes(received.data, policy=default_policy)
    assert message["From"] == f"{DIGEST_FROM_NAME} <digests@example.test>"
    assert received.mail_from == "digests@example.test"


def test_a_digest_job_run_again_after_a_crash_delivers_it_once(
    user_account: EmailAccount,
    imap_user: ImapUser,
    smtp_server: SmtpServer,
    smtp_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_pending_digest(user_account.id)
    finish = digest._finish
    crashed: list[bool] = []

    def crash_once_after_sending(*args: Any, **kwargs: Any) -> None:
        if not crashed:  # the worker dies after the send, before the digest is closed
            crashed.append(True)
            raise ConnectionError("worker lost")
        finish(*args, **kwargs)

    monkeypatch.setattr(digest, "_finish", crash_once_after_sending)
    first = send_digest_now(user_account.id)
    with session_scope() as session:  # the crashed run's lease runs out
        session.execute(update(Digest).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    second = send_digest_now(user_account.id)

    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.DONE)
    assert len(smtp_server.messages_to(imap_user.address)) == 1
    assert inbox_count(imap_user, "Your digest") == 1
    assert digest_statuses() == [DigestStatus.SENT]


def test_a_digest_the_smtp_server_could_not_take_is_sent_by_the_retry(
    user_account: EmailAccount,
    imap_user: ImapUser,
    smtp_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_pending_digest(user_account.id)
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nobody listens

    down = send_digest_now(user_account.id)
    monkeypatch.setenv("SMTP_URL", smtp_url)
    back = send_digest_now(user_account.id)

    assert down.outcome is Outcome.RETRY and "unreachable" in down.detail
    assert back.outcome is Outcome.DONE
    assert inbox_count(imap_user, "Your digest") == 1


def test_a_recipient_the_smtp_server_does_not_know_fails_the_digest_naming_smtp_url(
    tmp_path: Path, smtp_url: str
) -> None:
    account = add_account("nobody-here@example.test", tmp_path / "maildir")
    add_pending_digest(account.id)

    result = send_digest_now(account.id)

    assert result.outcome is Outcome.FAILED
    assert "SMTP_URL" in result.detail and "nobody-here@example.test" in result.detail
    with session_scope() as session:  # released: a fixed address is sent on the next run
        assert session.scalars(select(SentMail)).all() == []


@LOGIN_WITHOUT_TLS
def test_smtp_url_with_a_user_and_password_logs_in_before_sending(
    mailbox: Mailbox, login_server: LoginSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"smtp://ana:pass%20word%401@{login_server.host}:{login_server.port}"
    monkeypatch.setenv("SMTP_URL", url)
    add_pending_digest(mailbox.account_id)

    result = send_digest_now(mailbox.account_id)

    assert result.outcome is Outcome.DONE
    assert login_server.logins == ["ana"]
    assert [envelope.rcpt_tos for envelope in login_server.accepted] == [[mailbox.email]]


@LOGIN_WITHOUT_TLS
def test_a_refused_smtp_login_fails_the_digest_naming_smtp_url_but_not_the_password(
    mailbox: Mailbox, login_server: LoginSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"smtp://ana:wrong-secret@{login_server.host}:{login_server.port}"
    monkeypatch.setenv("SMTP_URL", url)
    add_pending_digest(mailbox.account_id)

    result = send_digest_now(mailbox.account_id)

    assert result.outcome is Outcome.FAILED
    assert "SMTP_URL" in result.detail and "wrong-secret" not in result.detail
    assert login_server.accepted == []


@LOGIN_WITHOUT_TLS
def test_a_server_asking_for_a_login_smtp_url_lacks_fails_the_digest_saying_so(
    mailbox: Mailbox, login_server: LoginSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_URL", f"smtp://{login_server.host}:{login_server.port}")
    add_pending_digest(mailbox.account_id)

    result = send_digest_now(mailbox.account_id)

    assert result.outcome is Outcome.FAILED
    assert "530" in result.detail and "user and password in SMTP_URL" in result.detail
