"""A Gmail message resource (users.messages.get, format=full) as the port's MailMessage,
read as the other adapters read a raw message (`reading.mail_message`): header values
decoded by `header_text`, names lower-cased, the first occurrence winning; the body the
text/plain part, else the text of the text/html part; attachments by their
Content-Disposition.

Gmail has labels, not folders. The port's folder is INBOX while the message has the
INBOX label, Sent for SENT, Drafts for DRAFT, and Archive otherwise (Gmail's All Mail:
whatever other labels it carries, which a move leaves on it). Messages in Trash or Spam
no longer exist for the jobs, as on IMAP: acting on them cannot take them back out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from email.message import Message
from email.utils import parseaddr
from typing import Any

from tasks.mail.body_text import html_to_text
from tasks.mail.maildir_headers import header_text, unfold
from tasks.mail.port import MailMessage

INBOX, ARCHIVE, SENT, DRAFTS = "INBOX", "Archive", "Sent", "Drafts"
# Gmail's system labels (ids and names are the same). CATEGORY_* are the inbox tabs.
SYSTEM_LABELS = frozenset(
    {
        "INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT",
        "CHAT", "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES", "CATEGORY_FORUMS",
    }
)  # fmt: skip
GONE_LABELS = frozenset({"TRASH", "SPAM"})
# The port's folder names -> Gmail's label ids.
FOLDER_LABELS = {INBOX: "INBOX", SENT: "SENT", DRAFTS: "DRAFT"}


def folder_of(label_ids: Iterable[str]) -> str:
    labels = set(label_ids)
    if "INBOX" in labels:
        return INBOX
    if "SENT" in labels:
        return SENT
    if "DRAFT" in labels:
        return DRAFTS
    return ARCHIVE


def is_gone(resource: Mapping[str, Any]) -> bool:
    """Whether the message is in Trash or Spam (deleted, for the jobs)."""
    return bool(GONE_LABELS & set(resource.get("labelIds") or ()))


def port_labels(label_ids: list[str], names: Mapping[str, str]) -> frozenset[str]:
    """The message's labels as the port names them: user labels by name, and Gmail's
    CATEGORY_* tabs by id (the rules that spot bulk mail read them)."""
    found = {names[label] for label in label_ids if label in names}
    found |= {label for label in label_ids if label.startswith("CATEGORY_")}
    return frozenset(found)


def mail_message(
    resource: Mapping[str, Any], names: Mapping[str, str], own_address: str
) -> MailMessage:
    """The port's message from a users.messages.get resource (format=full); `names` maps
    user label ids to their names."""
    payload = resource.get("payload") or {}
    raw = header_values(payload)
    label_ids = list(resource.get("labelIds") or ())
    own = parseaddr(own_address)[1].casefold()
    return MailMessage(
        id=str(resource["id"]),
        thread_id=str(resource.get("threadId") or resource["id"]),
        sender=header_text(raw.get("from", "")),
        to=header_text(raw.get("to", "")),
        subject=header_text(raw.get("subject", "")),
        body=body_text(payload),
        folder=folder_of(label_ids),
        read="UNREAD" not in label_ids,
        labels=port_labels(label_ids, names),
        message_id_header=unfold(raw.get("message-id", "")),
        date=internal_date(resource),
        headers={name: header_text(value) for name, value in raw.items()},
        has_attachment=any(_disposition(part) == "attachment" for part in walk(payload)),
        # The raw header, as the other adapters compare it: a decoded display name may
        # itself contain "<", "," or "@".
        sent_by_me=bool(own) and parseaddr(unfold(raw.get("from", "")))[1].casefold() == own,
    )


def internal_date(resource: Mapping[str, Any]) -> datetime | None:
    """When Gmail received the message (internalDate, epoch milliseconds), aware UTC."""
    try:
        return datetime.fromtimestamp(int(resource["internalDate"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def header_values(part: Mapping[str, Any]) -> dict[str, str]:
    """Lower-cased name -> raw value of a part's headers; the first occurrence wins."""
    found: dict[str, str] = {}
    for header in part.get("headers") or ():
        name, value = header.get("name"), header.get("value")
        if isinstance(name, str) and isinstance(value, str):
            found.setdefault(name.lower(), value)
    return found


def walk(part: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The part and every part inside it, depth first."""
    yield part
    for child in part.get("parts") or ():
        yield from walk(child)


def body_text(payload: Mapping[str, Any]) -> str:
    """The text/plain body, else the text of the text/html body, else ""."""
    part = body_part(payload)
    if part is None:
        return ""
    text = part_text(part)
    return html_to_text(text) if _mime_type(part) == "text/html" else text


def body_part(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The part holding the body: the text/plain one, else the text/html one."""
    return _find_body(payload, "text/plain") or _find_body(payload, "text/html")


def _find_body(part: Mapping[str, Any], wanted: str) -> Mapping[str, Any] | None:
    """The first part of type `wanted` that is not an attachment, as the stdlib's
    `get_body` finds it: only the root part of a multipart/related counts."""
    if _disposition(part) == "attachment":
        return None
    mime_type = _mime_type(part)
    if mime_type == wanted:
        return part
    children = list(part.get("parts") or ())
    if not mime_type.startswith("multipart/"):
        return None
    if mime_type == "multipart/related":
        children = children[:1]
    for child in children:
        found = _find_body(child, wanted)
        if found is not None:
            return found
    return None


def part_text(part: Mapping[str, Any]) -> str:
    """A text part's content, decoded by its charset (an unknown one as UTF-8)."""
    data = (part.get("body") or {}).get("data")
    content = decode_data(data) if isinstance(data, str) else b""
    charset = _content_type(part).get_content_charset() or "utf-8"
    try:
        return content.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know: UTF-8 is the likeliest
        return content.decode("utf-8", errors="replace")


def decode_data(data: str) -> bytes:
    """Gmail's base64url data (its padding may be left out); b"" when it is not base64."""
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def encode_data(content: bytes) -> str:
    return base64.urlsafe_b64encode(content).decode("ascii")


def _content_type(part: Mapping[str, Any]) -> Message:
    """A header-only Message holding the part's Content-Type and Content-Disposition,
    for the stdlib's lenient parameter parsing."""
    headers = header_values(part)
    holder = Message()
    for name in ("content-type", "content-disposition"):
        if name in headers:
            holder[name] = unfold(headers[name])
    return holder


def _mime_type(part: Mapping[str, Any]) -> str:
    return str(part.get("mimeType") or "").lower()


def _disposition(part: Mapping[str, Any]) -> str | None:
    return _content_type(part).get_content_disposition()
