"""An OutgoingMail as the RFC 5322 message every adapter sends or stores: one definition
of its headers, its Message-ID (from the idempotency key) and its reply threading."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid

from tasks.mail.port import OutgoingMail

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


def message_id_for(mail: OutgoingMail) -> str:
    """The Message-ID of the sent message: derived from the idempotency key, so that a
    second send with the key can find the first one."""
    return f"<{mail.idempotency_key}@jobbridge>" if mail.idempotency_key else make_msgid()


def outgoing_message(
    mail: OutgoingMail, address: str, message_id: str, references: list[str]
) -> EmailMessage:
    """The message from `address`; `references` is the thread up to the parent it
    answers (RFC 5322 3.6.4), used only when it is a reply."""
    message = EmailMessage()
    message["From"] = formataddr((mail.from_name, address)) if mail.from_name else address
    message["To"] = mail.to
    if mail.cc:
        message["Cc"] = mail.cc
    if mail.bcc:
        message["Bcc"] = mail.bcc
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    if mail.in_reply_to:
        message["In-Reply-To"] = mail.in_reply_to
        message["References"] = " ".join(references)
    message.set_content(mail.body)
    if mail.html:
        message.add_alternative(mail.html, subtype="html")  # makes multipart/alternative
    return message


def recipients_of(mail: OutgoingMail) -> list[str]:
    """Every address the message goes to: To, Cc and Bcc."""
    fields = [mail.to, mail.cc or "", mail.bcc or ""]
    return [address for _, address in getaddresses(fields) if address]


def recipients_problem(field: str) -> str | None:
    """Why a To, Cc or Bcc field names no one to send to (None when every part of it is
    an address, with or without a display name: `ana@example.com, Bo <bo@example.com>`)."""
    if any(char < " " or char == "\x7f" for char in field):
        return "must not hold line breaks or other control characters"
    parts = getaddresses([field])
    if not parts or any(not _ADDRESS.fullmatch(address) for _, address in parts):
        return f"must be addresses like name@example.com, not {field!r}"
    return None
