"""The contract tests' mailbox on a real Dovecot: an `imap` account with the three
messages the Maildir `Mailbox` has, and the same view of its state (`keys`, `provider`,
`folder_keys`, `snapshot`), so every contract case runs on it unchanged.

Its password is the session's IMAP_TEST_PASSWORD, which the web server and the worker
inherit: they read it from the environment when a job runs, as in production.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid
from typing import Any

from bridge.store.db import session_scope
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_accounts import imap_provider
from tasks.models import EmailAccount, MailProviderKind

PASSWORD_ENV = "IMAP_TEST_PASSWORD"
SUBJECTS = ["Quarterly report", "Team lunch", "Your receipt"]


class ImapMailbox:
    def __init__(self, account_id: str, email: str, user: str, dovecot: Any) -> None:
        self.account_id, self.email, self.user, self.dovecot = account_id, email, user, dovecot
        self.keys: list[str] = []

    def provider(self) -> ImapProvider:
        with session_scope() as session:
            account = session.get(EmailAccount, self.account_id)
            assert account is not None
            return imap_provider(account.email, account.provider_settings)

    def folder_keys(self, folder: str) -> set[str]:
        return {key for key, *_ in self.snapshot().get(folder, [])}

    def snapshot(self) -> dict[str, Any]:
        """Folder -> sorted (id, read, labels); Sent -> ("sent", subject); empty folders
        left out (the Maildir snapshot has only the folders a job used)."""
        mail = self.provider()
        state: dict[str, Any] = {}
        try:
            for _, _, folder in mail.client.list_folders():
                mail.select(folder)
                uids = mail.client.search(["ALL"])
                if not uids:
                    continue
                fetched = mail.client.fetch(uids, ["BODY.PEEK[HEADER]", "FLAGS"])
                # A message a job moves between the SEARCH and the FETCH comes back
                # without its header: it is read where it lands, at the next snapshot.
                entries = [
                    _entry(folder, data)
                    for data in fetched.values()
                    if data.get(b"BODY[HEADER]") is not None
                ]
                state[mail.folders.port_name(folder)] = sorted(entries)
        finally:
            mail.close()
        return state


def _entry(folder: str, data: dict[bytes, Any]) -> tuple[Any, ...]:
    headers = BytesHeaderParser().parsebytes(data[b"BODY[HEADER]"])
    if folder == "Sent":
        return ("sent", str(headers["Subject"]))
    flags = data[b"FLAGS"]
    labels = sorted(f.decode() for f in flags if not f.startswith(b"\\"))
    return (str(headers["Message-ID"]).strip(), b"\\Seen" in flags, labels)


def _stored_settings(user: str, dovecot: Any, smtp: Any) -> dict[str, Any]:
    login = {"security": "none", "username": user, "password_env": PASSWORD_ENV}
    settings: dict[str, Any] = {"imap": {"host": dovecot.host, "port": dovecot.port, **login}}
    if smtp is not None:
        settings["smtp"] = {"host": smtp.host, "port": smtp.port, **login}
    return settings


def new_imap_mailbox(dovecot: Any, smtp: Any) -> ImapMailbox:
    """A fresh Dovecot user, its account, and the three messages, in delivery order."""
    user = f"c-{uuid.uuid4().hex[:12]}"
    dovecot.add_user(user, os.environ[PASSWORD_ENV])
    email = f"{user}@example.test"
    with session_scope() as session:
        account = EmailAccount(
            email=email,
            provider=MailProviderKind.IMAP,
            provider_settings=_stored_settings(user, dovecot, smtp),
        )
        session.add(account)
    mailbox = ImapMailbox(account.id, email, user, dovecot)
    mail = mailbox.provider()
    try:
        for number, subject in enumerate(SUBJECTS):
            message = EmailMessage()
            message["From"] = f"sender{number}@example.test"
            message["To"] = email
            message["Subject"] = subject
            message["Date"] = format_datetime(datetime.now(UTC))
            message["Message-ID"] = make_msgid("contract")
            message.set_content(f"Body of {subject}.")
            mailbox.keys.append(mail.deliver(message))
    finally:
        mail.close()
    return mailbox
