"""A Maildir inbox of 40 messages for bulk runs, and a wait for a run to finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from tasks.demo import add_account
from tasks.jobs import bulk_process
from tasks.mail.maildir import MaildirProvider
from tasks.models import BulkJobStatus, RuleActionType, utcnow
from tests.support.rules import add_rule


class Inbox:
    def __init__(self, account_id: str, path: Path, email: str) -> None:
        self.account_id, self.path, self.email = account_id, path, email

    def provider(self) -> MaildirProvider:
        return MaildirProvider(self.path, self.email)

    def newest_key(self) -> str:
        """The key of the inbox's newest message by its Date (a listing's first)."""
        mail = self.provider()
        dates = {key: mail.get_message(key).date for key in mail.folder_keys("INBOX")}
        return max(dates, key=lambda key: dates[key] or datetime.min.replace(tzinfo=UTC))


def seed_inbox(tmp_path: Path) -> Inbox:
    """40 recent messages: 20 newsletters and 20 personal ones, one thread each, and a
    rule that archives the newsletters."""
    email = "bulk@example.test"
    account = add_account(email, tmp_path / "maildir")
    mail = MaildirProvider(tmp_path / "maildir", email)
    now = utcnow()
    for number in range(40):
        message = EmailMessage()
        kind = "Newsletter" if number % 2 else "Hello"
        message["From"] = f"{kind.lower()}{number}@example.test"
        message["To"] = email
        message["Subject"] = f"{kind} #{number}"
        message["Date"] = format_datetime(now - timedelta(minutes=number + 1))
        message["Message-ID"] = make_msgid("bulk")
        message.set_content(f"{kind} body {number}")
        mail.deliver(message)
    add_rule(
        account.id, "newsletters", [{"type": RuleActionType.ARCHIVE}], subject_pattern="newsletter"
    )
    return Inbox(account.id, tmp_path / "maildir", email)


def finished(job_id: str) -> Any:
    job = bulk_process.get(job_id)
    return job if job is not None and job.status is BulkJobStatus.COMPLETED else None
