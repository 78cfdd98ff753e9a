"""What the IMAP adapter fetches of a message and how it reads it: the header fields a
listing and threading need (never a body), or the whole message; both summarised as the
Maildir adapter summarises (`maildir_headers.summarise`), so dates agree.

A message's own thread root is the first msg-id in its References, else in its
In-Reply-To, else its own id: the id `get_thread` finds its thread by. Its links are
every msg-id in those two headers: messages that share one are in one thread. Only ids a
SEARCH can ask for count (printable ASCII in angle brackets): text around them, 8-bit
bytes and broken ids are passed over.

Messages are parsed by `reading.parse`: their MIME headers as the stdlib's default policy
reads them, so malformed MIME and undeclared 8-bit text are read as well as it can.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from imapclient import IMAPClient

from bridge.store.columns import EXTERNAL_LENGTH
from tasks.mail.maildir_headers import Summary, header_fields, raw_headers, summarise, unfold
from tasks.mail.port import MailMessage
from tasks.mail.reading import mail_message, parse

_FIELDS = "MESSAGE-ID REFERENCES IN-REPLY-TO DATE"
_HEADER_FIELDS = f"BODY.PEEK[HEADER.FIELDS ({_FIELDS})]"
_HEADER_KEY = f"BODY[HEADER.FIELDS ({_FIELDS})]".encode()
_WHOLE, _WHOLE_KEY = "BODY.PEEK[]", b"BODY[]"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An id a search can ask for: printable ASCII, no space, quote or backslash; and a msg-id
# among other text: such an id in angle brackets.
_SEARCHABLE = re.compile(r"[!#-\[\]-~]+")
_MSG_ID = re.compile(r"<[!#-;=?-\[\]-~]+>")
SEEN = b"\\Seen"


@dataclass(frozen=True)
class Fetched:
    """One message as fetched: its UID, its port id, its summary, flags and keywords."""

    uid: int
    id: str
    summary: Summary  # its thread_id is the message's own thread root
    flags: frozenset[bytes]
    raw: bytes | None = None  # the whole message, when fetched whole
    links: tuple[str, ...] = ()  # the ids in References and In-Reply-To

    @property
    def thread_id(self) -> str:
        return self.summary.thread_id

    @property
    def date(self) -> datetime:
        return self.summary.date

    @property
    def keywords(self) -> frozenset[str]:
        return keywords(self.flags)


def keywords(flags: Iterable[bytes]) -> frozenset[str]:
    """The flags that are labels: keywords, not system flags such as \\Seen."""
    return frozenset(
        flag.decode("utf-8", "replace") for flag in flags if not flag.startswith(b"\\")
    )


def own_message_id(fetched: Fetched) -> str:
    return fetched.summary.message_id


def port_id(message_id: str, uidvalidity: int, uid: int, folder: str) -> str:
    """The Message-ID when it can serve as an id (ASCII on one line, short enough to
    store, searchable), else the message's place: `uid:<UIDVALIDITY>:<UID>:<folder>`."""
    if (
        message_id
        and message_id.isascii()
        and len(message_id) <= EXTERNAL_LENGTH
        and not _CONTROL.search(message_id)
    ):
        return message_id
    return f"uid:{uidvalidity}:{uid}:{folder}"


def searchable(message_id: str) -> bool:
    """Whether a SEARCH HEADER can ask for the id."""
    return _SEARCHABLE.fullmatch(message_id) is not None


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
        raw = header_fields(block)
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
    summary = summarise(raw, message_id, stamp)
    referenced = _MSG_ID.findall(unfold(raw.get("references", "")))
    links = tuple(
        dict.fromkeys((*referenced, *_MSG_ID.findall(unfold(raw.get("in-reply-to", "")))))
    )
    root = links[0] if links else own if searchable(own) else message_id
    return Fetched(
        uid=uid,
        id=message_id,
        summary=replace(summary, thread_id=root),
        flags=frozenset(flags) if isinstance(flags, tuple) else frozenset(),
        raw=whole,
        links=links,
    )


def message_from(fetched: Fetched, port_folder: str, own_address: str) -> MailMessage:
    """The port's message from a whole fetch; labels are its keywords."""
    assert fetched.raw is not None, "message_from needs a whole fetch"
    parsed = parse(fetched.raw)
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
