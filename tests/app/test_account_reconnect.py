"""A refresh token the provider refuses (invalid_grant) is recorded on the account: the
job fails for good with "reconnect this account", later jobs stop before calling the
provider, and `accounts check` says what to run."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bridge.store.db import session_scope
from tasks.accounts import mailbox_of
from tasks.mail.port import AccountDisconnected
from tasks.models import EmailAccount, MailProviderKind
from tests.support.commands import jobbridge
from tests.support.gmail_double import GmailDouble

EMAIL = "ana@example.test"
TOKEN_ENV = "ANA_GOOGLE_REFRESH_TOKEN"


@pytest.fixture
def gmail(monkeypatch: pytest.MonkeyPatch) -> Iterator[GmailDouble]:
    with GmailDouble(EMAIL) as double:
        for name, value in {**double.env(), TOKEN_ENV: double.refresh_token}.items():
            monkeypatch.setenv(name, value)
        yield double
        assert double.violations == []


@pytest.fixture
def account_id(gmail: GmailDouble) -> str:
    with session_scope() as session:
        account = EmailAccount(
            email=EMAIL,
            provider=MailProviderKind.GOOGLE,
            provider_settings={"refresh_token_env": TOKEN_ENV},
        )
        session.add(account)
    return account.id


def _message(gmail: GmailDouble) -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "bob@example.test", EMAIL, "Hi"
    message.set_content("Hello.")
    return gmail.deliver(message)


def _connection_error(account_id: str) -> Any:
    with session_scope() as session:
        account = session.get(EmailAccount, account_id)
        assert account is not None
        return account.connection_error


def test_a_revoked_token_fails_for_good_and_is_recorded(
    gmail: GmailDouble, account_id: str
) -> None:
    key = _message(gmail)
    gmail.revoke()

    with pytest.raises(AccountDisconnected, match="jobbridge accounts connect google"):
        mailbox_of(account_id)[1].archive(key)
    assert "reconnect this account" in _connection_error(account_id)


def test_later_jobs_stop_before_calling_the_provider(gmail: GmailDouble, account_id: str) -> None:
    key = _message(gmail)
    gmail.revoke()
    with pytest.raises(AccountDisconnected):
        mailbox_of(account_id)[1].archive(key)
    calls = len(gmail.requests)

    with pytest.raises(Exception, match="reconnect this account"):
        mailbox_of(account_id)[1].archive(key)
    assert len(gmail.requests) == calls


def test_accounts_check_says_to_reconnect(
    gmail: GmailDouble, account_id: str, tmp_path: Path
) -> None:
    gmail.revoke()
    with pytest.raises(AccountDisconnected):
        mailbox_of(account_id)[1].list_threads(page_size=1)

    result = jobbridge("accounts", "check", EMAIL, workdir=tmp_path)

    assert result.returncode == 1
    assert "jobbridge accounts connect google ana@example.test" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_accounts_check_lists_a_thread_of_a_working_account(
    gmail: GmailDouble, account_id: str, tmp_path: Path
) -> None:
    _message(gmail)

    result = jobbridge("accounts", "check", EMAIL, workdir=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{EMAIL} (google): ready"
    assert gmail.calls("threads.list")


def test_importing_the_accounts_file_again_lets_the_account_try_again(
    gmail: GmailDouble, account_id: str, tmp_path: Path
) -> None:
    from tasks.accounts_import import import_file

    gmail.revoke()
    with pytest.raises(AccountDisconnected):
        mailbox_of(account_id)[1].list_threads(page_size=1)
    file = tmp_path / "accounts.yaml"
    file.write_text(
        f"accounts:\n  - {{email: {EMAIL}, provider: google, refresh_token_env: {TOKEN_ENV}}}\n"
    )
    import_file(file)

    assert _connection_error(account_id) is None
