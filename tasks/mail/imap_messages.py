"""What the IMAP adapter fetches of a message and how it reads it: the header fields a
listing needs (never a body), or the whole message; both summarised as the Maildir
adapter summarises (`maildir_headers.summarise`), so threads and dates agree.

Messages are parsed with the stdlib's default policy: malformed MIME and undeclared
8-bit text are read as well as they can be, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser

from imapclient import IMAPClient

from bridge.store.columns import EXTERNAL_LENGTH
from tasks.mail.maildir_headers import Summary, raw_headers, summarise, unfold
from tasks.mail.port import MailMessage
from tasks.mail.reading import mail_message

_HEADER_FIELDS = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID REFERENCES DATE)]"
_HEADER_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID REFERENCES DATE)]"
_WHOLE, _WHOLE_KEY = "BODY.PEEK[]", b"BODY[]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SEEN = b"\\Seen"


@dataclass(frozen=True)
class Fetched:
    """One message as fetched: its UID, its port id, its summary, flags and keywords."""

    uid: int
    id: str
    summary: Summary
    flags: frozenset[bytes]
    raw: bytes | None = None  # the whole message, when fetched whole

    @property
    def thread_id(self) -> str:
        return self.summary.thread_id

    @property
    def date(self) -> datetime:
        return self.summary.date

    @property
    def keywords(self) -> frozenset[str]:
        """The flags that are labels: keywords, not system flags such as \\Seen."""
        return frozenset(
            flag.decode("utf-8", "replace") for flag in self.flags if not flag.startswith(b"\\")
        )


def own_message_id(fetched: Fetched) -> str:
    return fetched.summary.message_id


def port_id(message_id: str, uidvalidity: int, uid: int, folder: str) -> str:
    """The Message-ID when it can serve as an id (one line, short enough to store), else
    the message's place: `uid:<UIDVALIDITY>:<UID>:<folder>`."""
    if message_id and len(message_id) <= EXTERNAL_LENGTH and not _CONTROL.search(message_id):
        return message_id
    return f"uid:{uidvalidity}:{uid}:{folder}"


def fetch_headers(
    client: IMAPClient, uids: Sequence[int], folder: str, uidvalidity: int
) -> dict[int, Fetched]:
    """The listing fields of the selected folder's messages, by UID (gone ones left out)."""
    return _fetch(client, uids, folder, uidvalidity, whole=False)


def fetch_whole(
    client: IMAPClient, uids: Sequence[int], folder: str, uidvalidity: int
) -> dict[int, Fetched]:
    """The selected folder's messages, whole, by UID (gone ones left out)."""
    return _fetch(client, uids, folder, uidvalidity, whole=True)


def _fetch(
    client: IMAPClient, uids: Sequence[int], folder: str, uidvalidity: int, *, whole: bool
) -> dict[int, Fetched]:
    if not uids:
        return {}
    item, key = (_WHOLE, _WHOLE_KEY) if whole else (_HEADER_FIELDS, _HEADER_KEY)
    response = client.fetch(list(uids), [item, "FLAGS", "INTERNALDATE"])
    found: dict[int, Fetched] = {}
    for uid, data in response.items():
        block = data.get(key)
        if not isinstance(block, bytes):
            continue
        raw = raw_headers(BytesHeaderParser().parsebytes(block).raw_items())
        found[uid] = _fetched(uid, raw, data, folder, uidvalidity, block if whole else None)
    return found


def _fetched(
    uid: int,
    raw: dict[str, str],
    data: dict[bytes, object],
    folder: str,
    uidvalidity: int,
    whole: bytes | None,
) -> Fetched:
    arrived = data.get(b"INTERNALDATE")
    stamp = arrived.timestamp() if isinstance(arrived, datetime) else datetime.now(UTC).timestamp()
    own = unfold(raw.get("message-id", ""))
    message_id = port_id(own, uidvalidity, uid, folder)
    flags = data.get(b"FLAGS")
    return Fetched(
        uid=uid,
        id=message_id,
        summary=summarise(raw, message_id, stamp),
        flags=frozenset(flags) if isinstance(flags, tuple) else frozenset(),
        raw=whole,
    )


def message_from(fetched: Fetched, port_folder: str, own_address: str) -> MailMessage:
    """The port's message from a whole fetch; labels are its keywords."""
    assert fetched.raw is not None, "message_from needs a whole fetch"
    parsed = BytesParser(EmailMessage, policy=policy.default).parsebytes(fetched.raw)
    return mail_message(
        parsed,
        raw_headers(parsed.raw_items()),
        fetched.summary,
        message_id=fetched.id,
        folder=port_folder,
        read=SEEN in fetched.flags,
        labels=fetched.keywords,
        own_address=own_address,
    )
