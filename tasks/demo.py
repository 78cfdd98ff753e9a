"""`jobbridge demo`: a demo account whose Maildir and rules exercise every job.

The rules go through the same import as `jobbridge accounts import`, so the demo is
also an example of that file's format (see DEMO_ACCOUNT).
"""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bridge.store.db import session_scope
from tasks.account_lookup import stored_account
from tasks.accounts_file import parse
from tasks.accounts_import import apply
from tasks.mail.maildir import MaildirProvider
from tasks.models import EmailAccount, MailProviderKind, utcnow

DEMO_EMAIL = "demo@localhost"

DEMO_ACCOUNT: dict[str, Any] = {
    "email": DEMO_EMAIL,
    "provider": "maildir",
    "digest": {"every_days": 1},
    "summary": "daily",
    "rules": [
        {
            "name": "Newsletters",
            "position": 1,
            "conditions": {"from": "newsletter|digest@|news@", "regex": True},
            "actions": [{"type": "DIGEST"}, {"type": "ARCHIVE"}],
        },
        {
            "name": "Receipts",
            "position": 2,
            "conditions": {"subject": "receipt|invoice|order", "regex": True},
            "actions": [{"type": "LABEL", "label": "Receipts"}],
        },
        {
            "name": "Notifications",
            "position": 3,
            "conditions": {"from": "no-?reply|notifications@", "regex": True},
            "actions": [{"type": "MARK_READ"}, {"type": "ARCHIVE", "delay_minutes": 1}],
        },
        {
            "name": "Lunch invitations",
            "position": 4,
            "conditions": {"subject": "lunch"},
            "actions": [{"type": "REPLY", "content": "Sounds good, see you there!"}],
        },
    ],
    "senders": [{"email": "spam@deals.example", "status": "IGNORED"}],
}

# (sender, subject, body, extra headers, days ago)
_MESSAGES: list[tuple[str, str, str, dict[str, str], int]] = [
    *[
        (
            "Tech Weekly <newsletter@techweekly.example>",
            f"Tech Weekly #{n}: what shipped this week",
            f"This week: new releases, a deep dive into databases, and {n} links worth reading.",
            {"List-Unsubscribe": "<https://techweekly.example/u>"},
            n,
        )
        for n in range(1, 7)
    ],
    *[
        (
            "City News <news@city.example>",
            f"Morning briefing {n}",
            "The council approved the new bike lanes. Weather: sunny, 18 degrees.",
            {"List-Id": "<briefing.city.example>"},
            n + 1,
        )
        for n in range(1, 5)
    ],
    *[
        (
            "Shop <orders@shop.example>",
            f"Your receipt for order #{1040 + n}",
            f"Thanks for your order. Total: {20 + n}.00 EUR. Payment received.",
            {},
            n * 2,
        )
        for n in range(1, 6)
    ],
    *[
        (
            "Git Host <noreply@githost.example>",
            f"[repo] Build #{300 + n} passed",
            "All checks have passed on main.",
            {"Auto-Submitted": "auto-generated"},
            n,
        )
        for n in range(1, 6)
    ],
    ("Alice <alice@example.com>", "Lunch on Friday?", "Are you free for lunch on Friday?", {}, 1),
    (
        "Bob <bob@example.com>",
        "Project plan",
        "Here is the plan we discussed, comments welcome.",
        {},
        2,
    ),
    (
        "Carol <carol@example.com>",
        "Holiday photos",
        "Finally sorted the photos from the trip!",
        {},
        3,
    ),
    ("Dan <dan@work.example>", "Quarterly numbers", "The numbers for Q3 are attached.", {}, 9),
    (
        "Calendar <calendar@work.example>",
        "Invitation: Planning @ Mon",
        "You are invited.\nDTSTART:20261130T090000Z\nWhen: Monday planning",
        {"Content-Class": "urn:content-classes:calendarmessage"},
        12,
    ),
    ("Deals <spam@deals.example>", "50% off everything", "Limited time offer!", {}, 1),
    (
        "Travel Deals <promo@travel.example>",
        "Flights from 29 EUR",
        "Book now, seats are limited.",
        {},
        15,
    ),
    (
        "Forum <digest@forum.example>",
        "Forum digest: 12 new posts",
        "Top thread: Maildir tips.",
        {},
        20,
    ),
]


def add_account(email: str, maildir: Path) -> EmailAccount:
    """Create (or update the Maildir of) a Maildir-backed account; idempotent. The account
    stored for the address in another case is the same mailbox, as for the accounts file.
    The folders are made first, so no account is committed without them."""
    MaildirProvider(maildir, email)  # creates the folders
    with session_scope() as session:
        account = stored_account(session, email)
        if account is None:
            account = EmailAccount(email=email, provider=MailProviderKind.MAILDIR)
            session.add(account)
        account.provider_settings = {"path": str(maildir.resolve())}
    return account


def seed_messages(mail: MaildirProvider) -> None:
    now = utcnow()
    for sender, subject, body, headers, days_ago in _MESSAGES:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, mail.address, subject
        message["Date"] = format_datetime(now - timedelta(days=days_ago, minutes=len(subject)))
        message["Message-ID"] = make_msgid("demo")
        for name, value in headers.items():
            message[name] = value
        message.set_content(body)
        mail.deliver(message)


def ensure_demo_account(data_dir: Path) -> tuple[EmailAccount, list[str]]:
    """The demo account and its inbox message ids; the Maildir is seeded on first use."""
    maildir = (data_dir / "maildir" / "demo").resolve()
    apply(parse({"accounts": [{**DEMO_ACCOUNT, "maildir": str(maildir)}]}, base=data_dir))
    mail = MaildirProvider(maildir, DEMO_EMAIL)
    if not any(mail.folder_keys(folder) for folder in mail.folder_names()):
        seed_messages(mail)
    with session_scope() as session:
        account = session.scalars(
            select(EmailAccount).where(EmailAccount.email == DEMO_EMAIL)
        ).one()
    return account, sorted(mail.folder_keys("INBOX"))
