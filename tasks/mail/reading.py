"""A parsed message as the port's MailMessage: one definition for every adapter that
reads raw RFC 5322 messages (Maildir files, IMAP fetches)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import parseaddr

from tasks.mail.body_text import body_text
from tasks.mail.maildir_headers import Summary, header_text, unfold
from tasks.mail.port import MailMessage


def mail_message(
    parsed: EmailMessage,
    raw: dict[str, str],
    summary: Summary,
    *,
    message_id: str,
    folder: str,
    read: bool,
    labels: frozenset[str],
    own_address: str,
) -> MailMessage:
    """The message, its header values read from the raw text (as listing reads them, so a
    message's thread and date are the same whether it was listed or read)."""
    own = parseaddr(own_address)[1].casefold()
    return MailMessage(
        id=message_id,
        thread_id=summary.thread_id,
        sender=header_text(raw.get("from", "")),
        to=header_text(raw.get("to", "")),
        subject=header_text(raw.get("subject", "")),
        body=body_text(parsed),
        folder=folder,
        read=read,
        labels=labels,
        message_id_header=summary.message_id,
        date=summary.date,
        headers={name: header_text(value) for name, value in raw.items()},
        has_attachment=any(
            part.get_content_disposition() == "attachment" for part in parsed.walk()
        ),
        # The raw header, not the decoded text: a decoded display name may itself
        # contain "<", "," or "@" and fool the address parser.
        sent_by_me=bool(own) and parseaddr(unfold(raw.get("from", "")))[1].casefold() == own,
    )
