"""IMAP accounts: the accounts file's `imap:`/`smtp:` form, `jobbridge accounts check`,
and jobs acting on a real Dovecot mailbox through the IMAP adapter."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.core import run_job
from bridge.outcome import Delivery
from bridge.store.db import session_scope
from tasks.accounts import mailbox_of
from tasks.jobs import bulk_worker
from tasks.mail.imap import ImapProvider
from tasks.models import (
    ActionType,
    BulkJobStatus,
    BulkProcessJob,
    EmailAccount,
    MailProviderKind,
    RuleActionType,
    utcnow,
)
from tasks.scheduled_actions import execute_scheduled_action
from tests.support.actions import insert_action
from tests.support.rules import add_rule

runner = CliRunner()


def jobbridge(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def accounts_file(tmp_path: Path, user: Any, smtp: Any, password_env: str) -> Path:
    path = tmp_path / "accounts.yaml"
    servers = f"security: none, username: {user.username}, password_env: {password_env}"
    path.write_text(
        f"""
accounts:
  - email: {user.address}
    provider: imap
    imap: {{host: {user.host}, port: {user.port}, {servers}}}
    smtp: {{host: {smtp.host}, port: {smtp.port}, {servers}}}
"""
    )
    return path


@pytest.fixture
def imap_account(
    tmp_path: Path, imap_user: Any, smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> EmailAccount:
    monkeypatch.setenv("TEST_MAIL_PASSWORD", imap_user.password)
    path = accounts_file(tmp_path, imap_user, smtp_server, "TEST_MAIL_PASSWORD")
    result = jobbridge("accounts", "import", str(path))
    assert result.exit_code == 0, result.output
    with session_scope() as session:
        return session.scalars(select(EmailAccount)).one()


def deliver(account: EmailAccount, subject: str) -> str:
    message = EmailMessage()
    message["From"] = "boss@example.test"
    message["To"] = account.email
    message["Subject"] = subject
    message["Message-ID"] = make_msgid("imap-jobs")
    message.set_content(f"About {subject}.")
    _, mail = mailbox_of(account.id)
    assert isinstance(mail, ImapProvider)
    return mail.deliver(message)


def test_an_imap_account_is_stored_with_the_name_of_its_password_variable(
    imap_account: EmailAccount, imap_user: Any
) -> None:
    assert imap_account.provider is MailProviderKind.IMAP
    stored = imap_account.provider_settings
    assert stored["imap"]["password_env"] == "TEST_MAIL_PASSWORD"
    assert imap_user.password not in repr(stored)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"security": "none", "host": "mail.example.com"}, "only for a loopback host"),
        ({"password_env": "not a name"}, "password_env"),
        ({"security": "ssl"}, "security"),
    ],
)
def test_bad_server_settings_are_named_and_nothing_is_written(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    entry = {"host": "127.0.0.1", "port": "143", "security": "none", "username": "ana"}
    entry |= {"password_env": "ANA_PASSWORD"} | change
    inline = ", ".join(f"{key}: {value}" for key, value in entry.items())
    path = tmp_path / "accounts.yaml"
    path.write_text(
        f"accounts:\n  - email: ana@example.test\n    provider: imap\n    imap: {{{inline}}}\n"
    )

    result = jobbridge("accounts", "import", str(path))

    assert result.exit_code == 1 and "accounts[0].imap" in result.stderr
    assert message in result.stderr
    with session_scope() as session:
        assert session.scalars(select(EmailAccount)).first() is None


def test_accounts_check_says_which_folders_the_jobs_use(imap_account: EmailAccount) -> None:
    result = jobbridge("accounts", "check", imap_account.email)

    assert result.exit_code == 0, result.output
    assert "logged in as" in result.stdout
    assert "Archive (\\Archive)" in result.stdout and "Sent (\\Sent)" in result.stdout
    assert "IMAP keywords" in result.stdout and "PROBLEM" not in result.stdout


def test_accounts_check_names_an_unset_password_variable(
    imap_account: EmailAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_MAIL_PASSWORD")

    result = jobbridge("accounts", "check", imap_account.email)

    assert result.exit_code == 1 and "TEST_MAIL_PASSWORD is not set" in result.stderr


def test_accounts_check_reports_a_refused_login_without_the_password(
    imap_account: EmailAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_MAIL_PASSWORD", "wrong-password-123")

    result = jobbridge("accounts", "check", imap_account.email)

    assert result.exit_code == 1 and "PROBLEM: IMAP" in result.stdout
    assert "login refused" in result.stdout and "wrong-password-123" not in result.output


def test_accounts_check_still_checks_smtp_when_imap_refuses(
    imap_account: EmailAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_MAIL_PASSWORD", "wrong-password-123")

    result = jobbridge("accounts", "check", imap_account.email)

    smtp = [line for line in result.stdout.splitlines() if line.lstrip().startswith("smtp")]
    assert result.exit_code == 1 and len(smtp) == 1, result.stdout


def test_a_scheduled_archive_runs_on_the_imap_mailbox(imap_account: EmailAccount) -> None:
    key = deliver(imap_account, "Quarterly report")
    row = insert_action(imap_account.id, ActionType.ARCHIVE, key)

    result = run_job(execute_scheduled_action, {"scheduledActionId": row.id}, Delivery("t", "1", 0))

    assert result.outcome.value == "done", result.detail
    _, mail = mailbox_of(imap_account.id)
    assert mail.get_message(key).folder == "Archive"


def test_a_bulk_worker_applies_the_rules_on_the_imap_mailbox(imap_account: EmailAccount) -> None:
    key = deliver(imap_account, "Weekly newsletter")
    label_news = [{"type": RuleActionType.LABEL, "label": "News"}]
    add_rule(imap_account.id, "news", label_news, subject_pattern="newsletter")
    with session_scope() as session:
        job = BulkProcessJob(
            email_account_id=imap_account.id, start_date=utcnow(), status=BulkJobStatus.RUNNING
        )
        session.add(job)
    message = {
        "jobId": job.id,
        "emailAccountId": imap_account.id,
        "messageId": key,
        "threadId": key,
    }

    result = run_job(bulk_worker.process_message, message, Delivery("t", "1", 0))

    assert result.detail == "rules applied: news"
    _, mail = mailbox_of(imap_account.id)
    assert mail.get_message(key).labels == frozenset({"News"})
