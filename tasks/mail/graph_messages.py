"""Graph's message JSON as the port's MailMessage, and an OutgoingMail as Graph's JSON.

What each MailMessage field holds is what the Maildir and IMAP adapters put there:
`sender` and `to` as header text ("Ann <ann@example.com>"), `body` as plain text (HTML
rendered by `body_text`), `labels` the categories, `message_id_header` the
internetMessageId, `headers` lower-cased names from internetMessageHeaders (Graph has
them for received mail only), `sent_by_me` when From is the account's own address.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import formataddr, getaddresses, parseaddr
from typing import Any

from tasks.mail.body_text import html_to_text
from tasks.mail.port import MailMessage, OutgoingMail

# What get_message and get_thread read; a listing reads LISTED only.
MESSAGE_FIELDS = ",".join(
    [
        "id", "conversationId", "from", "toRecipients", "subject", "body", "parentFolderId",
        "isRead", "isDraft", "categories", "internetMessageId", "receivedDateTime",
        "internetMessageHeaders", "hasAttachments", "flag",
    ]
)  # fmt: skip
LISTED = "id,conversationId,receivedDateTime"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: object) -> datetime:
    """An aware UTC datetime from Graph's ISO 8601 text (the epoch if there is none)."""
    if not isinstance(value, str) or not value:
        return _EPOCH
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return _EPOCH
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def graph_time(moment: datetime) -> str:
    """An OData DateTimeOffset literal in UTC (fractions of a second only when there are)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(pattern)


def _address(recipient: object) -> str:
    if not isinstance(recipient, dict):
        return ""
    email = recipient.get("emailAddress")
    if not isinstance(email, dict):
        return ""
    address = str(email.get("address") or "")
    name = str(email.get("name") or "")
    if not address:
        return name
    return formataddr((name, address)) if name and name != address else address


def mail_message(data: dict[str, Any], folder: str, own_address: str) -> MailMessage:
    body = data.get("body") if isinstance(data.get("body"), dict) else {}
    assert isinstance(body, dict)
    content = str(body.get("content") or "")
    if str(body.get("contentType", "")).lower() == "html":
        content = html_to_text(content)
    headers: dict[str, str] = {}
    for header in data.get("internetMessageHeaders") or []:
        if isinstance(header, dict) and header.get("name"):
            # The first of a repeated header, as email.message's get() would give.
            headers.setdefault(str(header["name"]).lower(), str(header.get("value") or ""))
    sender = data.get("from")
    own = parseaddr(own_address)[1].casefold()
    sender_address = ""
    if isinstance(sender, dict) and isinstance(sender.get("emailAddress"), dict):
        sender_address = str(sender["emailAddress"].get("address") or "").casefold()
    return MailMessage(
        id=str(data["id"]),
        thread_id=str(data.get("conversationId") or data["id"]),
        sender=_address(sender),
        to=", ".join(filter(None, (_address(r) for r in data.get("toRecipients") or []))),
        subject=str(data.get("subject") or ""),
        body=content,
        folder=folder,
        read=bool(data.get("isRead")),
        labels=frozenset(str(c) for c in data.get("categories") or []),
        message_id_header=str(data.get("internetMessageId") or ""),
        date=parse_time(data.get("receivedDateTime")),
        headers=headers,
        has_attachment=bool(data.get("hasAttachments")),
        sent_by_me=bool(own) and sender_address == own,
    )


def flagged(data: dict[str, Any]) -> bool:
    flag = data.get("flag")
    return isinstance(flag, dict) and flag.get("flagStatus") == "flagged"


def recipients(field: str | None) -> list[dict[str, Any]]:
    """Graph's recipient list for a To, Cc or Bcc value."""
    found: list[dict[str, Any]] = []
    for name, address in getaddresses([field or ""]):
        if address:
            email: dict[str, str] = {"address": address}
            if name:
                email["name"] = name
            found.append({"emailAddress": email})
    return found


def outgoing(mail: OutgoingMail, message_id: str, own_address: str) -> dict[str, Any]:
    """The message to create or send: the HTML alternative when there is one (a Graph
    message has one body), its Message-ID from the idempotency key."""
    message: dict[str, Any] = {
        "subject": mail.subject,
        "body": (
            {"contentType": "HTML", "content": mail.html}
            if mail.html
            else {"contentType": "Text", "content": mail.body}
        ),
        "toRecipients": recipients(mail.to),
        "internetMessageId": message_id,
    }
    if mail.cc:
        message["ccRecipients"] = recipients(mail.cc)
    if mail.bcc:
        message["bccRecipients"] = recipients(mail.bcc)
    if mail.from_name:
        message["from"] = {"emailAddress": {"address": own_address, "name": mail.from_name}}
    return message
