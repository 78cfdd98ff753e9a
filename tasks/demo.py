"""A demo account with a small Maildir, so `make dev` has something to act on."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from sqlalchemy import select

from tasks.db import session_scope
from tasks.mail.maildir import MaildirProvider
from tasks.models import EmailAccount, MailProviderKind

DEMO_EMAIL = "demo@localhost"
_MESSAGES = [
    ("news@example.com", "Weekly digest", "Ten things that happened this week."),
    ("alice@example.com", "Lunch on Friday?", "Are you free for lunch on Friday?"),
    ("receipts@shop.example", "Your receipt #1042", "Thanks for your order. Total: 42.00"),
]


def add_account(email: str, maildir: Path) -> EmailAccount:
    """Create (or update the Maildir of) a Maildir-backed account; idempotent."""
    with session_scope() as session:
        account = session.scalars(select(EmailAccount).where(EmailAccount.email == email)).first()
        if account is None:
            account = EmailAccount(email=email, provider=MailProviderKind.MAILDIR)
            session.add(account)
        account.provider_settings = {"path": str(maildir.resolve())}
    MaildirProvider(maildir, email)  # creates the folders
    return account


def ensure_demo_account(data_dir: Path) -> tuple[EmailAccount, list[str]]:
    """The demo account and the keys of its inbox messages (seeded on first use)."""
    maildir = data_dir / "maildir" / "demo"
    account = add_account(DEMO_EMAIL, maildir)
    mail = MaildirProvider(maildir, DEMO_EMAIL)
    if not mail.folder_keys("INBOX"):
        for sender, subject, body in _MESSAGES:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, DEMO_EMAIL, subject
            message["Date"], message["Message-ID"] = formatdate(), make_msgid("demo")
            message.set_content(body)
            mail.deliver(message)
    return account, sorted(mail.folder_keys("INBOX"))
