"""A parsed message as the port's MailMessage: one definition for every adapter that
reads raw RFC 5322 messages (Maildir files, IMAP fetches)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, BinaryIO

from tasks.mail.body_text import body_text
from tasks.mail.maildir_headers import Summary, header_text, unfold
from tasks.mail.port import MailMessage

# The headers that decide a message's MIME structure: where its parts are, which is the
# body, how each is encoded, which are attachments.
MIME_HEADERS = frozenset(
    {"content-type", "content-disposition", "content-transfer-encoding", "content-id"}
)


class _MimePolicy(Compat32):
    """compat32, except that the MIME headers are read as the default policy reads them.

    The default policy builds a header object on every access to every header, which
    costs about eight times the parse itself; the adapters read header values from the
    raw text (`raw_headers`) anyway. The MIME headers alone get the default policy's
    objects, so the body and the attachments are found exactly as under it, malformed
    parameters included; their values repeat across messages, so each object is built
    once (`_default_header`)."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if name.lower() in MIME_HEADERS:
            return _default_header(name, value)
        return super().header_fetch_parse(name, value)


@lru_cache(maxsize=4096)
def _default_header(name: str, value: str) -> Any:
    """The default policy's header object (immutable: safe to share between messages)."""
    return policy.default.header_fetch_parse(name, value)


_POLICY = _MimePolicy()


def parse(data: bytes | BinaryIO) -> EmailMessage:
    """A raw message parsed for its MIME structure: its body (`body_text`) and
    attachments read exactly as under the default policy (tests/app/test_message_parsing.py).
    Other header values are raw text, not header objects: read them with `raw_headers`."""
    parser = BytesParser(EmailMessage, policy=_POLICY)
    parsed = parser.parsebytes(data) if isinstance(data, bytes) else parser.parse(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


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
