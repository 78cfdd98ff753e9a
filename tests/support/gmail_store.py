"""The Gmail double's mailbox: messages (raw MIME, label ids, thread, internalDate),
labels and the search the adapter uses, answering as Gmail documents its resources.

Threads form as Gmail forms them: a message joins the thread of a message it names in
References or In-Reply-To when their subjects agree (a send joins only the threadId it
was given, under the same rule). Page tokens are cursors: the page after a token starts
after the last thread or message the token's page held, whatever changed since.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any

from tests.support.gmail_search import Query, label_key

SYSTEM_LABELS = (
    "INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT", "CHAT",
    "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)  # fmt: skip
NOT_ADDABLE = frozenset({"SENT", "DRAFT", "CHAT"})  # Gmail sets these itself
_ID = re.compile(r"[0-9a-f]{1,16}")
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg)\s*:\s*)+", re.IGNORECASE)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


class GmailRefusal(Exception):
    """An error answer, as Gmail gives it (status, message, reason)."""

    def __init__(self, status: int, message: str, reason: str = "invalidArgument") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def not_found() -> GmailRefusal:
    return GmailRefusal(404, "Requested entity was not found.", "notFound")


@dataclass
class Stored:
    id: str
    thread_id: str
    raw: bytes = field(repr=False)
    label_ids: list[str]
    internal_date: int  # epoch milliseconds
    history_id: int

    @cached_property
    def parsed(self) -> EmailMessage:
        """The whole message, parsed when first needed (a listing needs headers only)."""
        return parse(self.raw)

    @cached_property
    def _top_headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in BytesHeaderParser(policy=compat32).parsebytes(self.raw).items():
            found.setdefault(key.lower(), clean(value))
        return found

    def header(self, name: str) -> str:
        return self._top_headers.get(name.lower(), "")

    @property
    def references(self) -> list[str]:
        return (self.header("References") + " " + self.header("In-Reply-To")).split()


def clean(value: object) -> str:
    """A header value as Gmail's JSON gives it: unfolded, undeclared 8-bit read as UTF-8."""
    text = _FOLD.sub("", str(value)).strip()
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(EmailMessage, policy=policy.default).parsebytes(raw)


def valid_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise GmailRefusal(400, "Invalid id value")
    return value


class Store:
    def __init__(self, email: str) -> None:
        self.email = email
        self.messages: dict[str, Stored] = {}
        self.labels: dict[str, dict[str, Any]] = {
            name: {"id": name, "name": name, "type": "system"} for name in SYSTEM_LABELS
        }
        self._ids = itertools.count(int.from_bytes(secrets.token_bytes(6), "big") << 12)
        self._label_numbers = itertools.count(1)
        self._history = itertools.count(1000)
        self._cursors: dict[str, tuple[int, str]] = {}
        self._by_message_id: dict[str, list[Stored]] = {}  # Message-ID, casefolded

    # Labels ------------------------------------------------------------------------------
    def create_label(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name") or "").strip()
        if not name:
            raise GmailRefusal(400, "Invalid label name")
        if any(label_key(label["name"]) == label_key(name) for label in self.labels.values()):
            raise GmailRefusal(409, "Label name exists or conflicts", "duplicate")
        label_id = f"Label_{next(self._label_numbers)}"
        label = {
            "id": label_id,
            "name": name,
            "type": "user",
            "messageListVisibility": body.get("messageListVisibility", "show"),
            "labelListVisibility": body.get("labelListVisibility", "labelShow"),
        }
        self.labels[label_id] = label
        return dict(label)

    def label_id(self, name: str) -> str | None:
        for label in self.labels.values():
            if label_key(label["name"]) == label_key(name):
                return str(label["id"])
        return None

    def _checked_labels(self, ids: Iterable[str], where: str, *, adding: bool) -> list[str]:
        checked = []
        for label in ids:
            if label not in self.labels or (adding and label in NOT_ADDABLE):
                raise GmailRefusal(400, f"Invalid label {label} in {where}")
            checked.append(label)
        return checked

    # Messages ----------------------------------------------------------------------------
    def add(
        self,
        raw: bytes,
        label_ids: Iterable[str],
        *,
        thread_id: str | None = None,
        internal_date: datetime | None = None,
        join_references: bool = True,
    ) -> Stored:
        message_id = f"{next(self._ids):016x}"
        labels = list(dict.fromkeys(label_ids))
        for label in labels:
            if label not in self.labels:
                raise ValueError(f"no label {label!r} in the double")
        provisional = Stored(message_id, message_id, raw, labels, 0, 0)
        if thread_id is None and join_references:
            thread_id = self._thread_named_by(provisional)
        provisional.thread_id = thread_id or message_id
        provisional.internal_date = _millis(internal_date or _date_header(provisional))
        provisional.history_id = next(self._history)
        self.messages[message_id] = provisional
        own = _message_id_key(provisional.header("Message-ID"))
        if own:
            self._by_message_id.setdefault(own, []).append(provisional)
        return provisional

    def _thread_named_by(self, message: Stored, only: str | None = None) -> str | None:
        subject = _subject_key(message.header("Subject"))
        for reference in message.references:
            for other in self._by_message_id.get(_message_id_key(reference), ()):
                if only is not None and other.thread_id != only:
                    continue
                if _subject_key(other.header("Subject")) == subject:
                    return other.thread_id
        return None

    def get(self, message_id: str) -> Stored:
        found = self.messages.get(valid_id(message_id))
        if found is None:
            raise not_found()
        return found

    def thread(self, thread_id: str) -> list[Stored]:
        members = [m for m in self.messages.values() if m.thread_id == valid_id(thread_id)]
        if not members:
            raise not_found()
        return sorted(members, key=lambda m: (m.internal_date, m.id))

    def modify(self, message: Stored, add: list[str], remove: list[str]) -> None:
        add = self._checked_labels(add, "AddLabelIds", adding=True)
        remove = self._checked_labels(remove, "RemoveLabelIds", adding=False)
        if set(add) & set(remove):
            raise GmailRefusal(400, "Cannot both add and remove the same label")
        labels = [label for label in message.label_ids if label not in remove]
        message.label_ids = list(dict.fromkeys([*labels, *add]))
        message.history_id = next(self._history)

    def send(self, raw: bytes, thread_id: str | None) -> Stored:
        parsed = parse(raw)
        recipients = " ".join(str(parsed.get(name, "")) for name in ("To", "Cc", "Bcc"))
        if "@" not in recipients:
            raise GmailRefusal(400, "Recipient address required")
        if thread_id is not None and not any(
            m.thread_id == valid_id(thread_id) for m in self.messages.values()
        ):
            raise not_found()
        labels = ["SENT"] + (["INBOX"] if self.email.casefold() in recipients.casefold() else [])
        sent = self.add(raw, labels, internal_date=datetime.now(UTC), join_references=False)
        if thread_id is not None:
            # Gmail files a sent message under the given thread only when it answers a
            # message of that thread (References, In-Reply-To) with the same subject.
            sent.thread_id = self._thread_named_by(sent, only=thread_id) or sent.id
        return sent

    # Listing -----------------------------------------------------------------------------
    def matching(self, label_ids: list[str], q: str, *, include_spam_trash: bool) -> list[Stored]:
        query = Query.parse(q, self.labels)
        found = []
        for message in self.messages.values():
            labels = set(message.label_ids)
            if not set(label_ids) <= labels:
                continue
            if (
                not include_spam_trash
                and not query.names_spam_or_trash
                and labels
                & {
                    "SPAM",
                    "TRASH",
                }
            ):
                continue
            if query.matches(message, labels):
                found.append(message)
        return found

    def page(
        self, keyed: dict[str, int], page_token: str | None, max_results: int
    ) -> tuple[list[str], str | None]:
        """One page of ids ranked newest first by their date (ms): the ids and the token
        of the next page."""
        ranked = sorted((-stamp, item) for item, stamp in keyed.items())
        if page_token is not None:
            cursor = self._cursors.get(page_token)
            if cursor is None:
                raise GmailRefusal(400, "Invalid pageToken")
            ranked = [key for key in ranked if key > cursor]
        page = ranked[:max_results]
        token = None
        if len(ranked) > max_results:
            token = str(secrets.randbelow(10**19)).zfill(20)
            self._cursors[token] = page[-1]
        return [item for _, item in page], token


def resource(message: Stored, form: str, metadata_headers: list[str]) -> dict[str, Any]:
    """users.messages.get's Message in the given format."""
    answer: dict[str, Any] = {
        "id": message.id,
        "threadId": message.thread_id,
        "labelIds": list(message.label_ids),
        "snippet": snippet(message.parsed),
        "sizeEstimate": len(message.raw),
        "historyId": str(message.history_id),
        "internalDate": str(message.internal_date),
    }
    if form == "raw":
        answer["raw"] = _b64(message.raw)
    elif form == "metadata":
        wanted = {name.lower() for name in metadata_headers}
        headers = _headers(message.parsed)
        answer["payload"] = {
            "partId": "",
            "mimeType": message.parsed.get_content_type(),
            "filename": "",
            "headers": [h for h in headers if not wanted or h["name"].lower() in wanted],
            "body": {"size": 0},
        }
    elif form == "full":
        answer["payload"] = part_resource(message, message.parsed, "")
    return answer


def part_resource(message: Stored, part: Message, part_id: str) -> dict[str, Any]:
    """One MessagePart: leaves carry their decoded content as base64url data, or an
    attachmentId when they have a filename, as Gmail gives them."""
    answer: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": _filename(part),
        "headers": _headers(part),
    }
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        answer["body"] = {"size": 0}
        answer["parts"] = [
            part_resource(message, child, f"{part_id}.{index}" if part_id else str(index))
            for index, child in enumerate(children)
        ]
        return answer
    content = part_content(part)
    answer["body"] = {"size": len(content)}
    if answer["filename"]:
        answer["body"]["attachmentId"] = f"ANGjdJ{message.id}x{part_id or 'root'}"
    elif content:
        answer["body"]["data"] = _b64(content)
    return answer


def attachment(message: Stored, attachment_id: str) -> bytes:
    for part_id, part in _numbered(message.parsed, ""):
        if attachment_id == f"ANGjdJ{message.id}x{part_id or 'root'}":
            return part_content(part)
    raise GmailRefusal(400, "Invalid attachment token")


def _numbered(part: Message, part_id: str) -> Iterator[tuple[str, Message]]:
    yield part_id, part
    if part.is_multipart():
        for index, child in enumerate(part.get_payload()):
            yield from _numbered(child, f"{part_id}.{index}" if part_id else str(index))


def part_content(part: Message) -> bytes:
    content = part.get_payload(decode=True)
    return content if isinstance(content, bytes) else b""


def snippet(parsed: EmailMessage) -> str:
    body = parsed.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = part_content(body).decode(body.get_content_charset() or "utf-8", "replace")
    except LookupError:
        content = part_content(body).decode("utf-8", "replace")
    return " ".join(re.sub(r"<[^>]*>", " ", content).split())[:200]


def _headers(part: Message) -> list[dict[str, str]]:
    return [{"name": name, "value": clean(value)} for name, value in part.raw_items()]


def _filename(part: Message) -> str:
    try:
        return clean(part.get_filename() or "")
    except (TypeError, ValueError, LookupError):
        return ""


def _b64(content: bytes) -> str:
    return base64.urlsafe_b64encode(content).decode("ascii")


def _message_id_key(value: str) -> str:
    return value.strip().strip("<>").casefold()


def _subject_key(subject: str) -> str:
    return " ".join(_SUBJECT_PREFIX.sub("", subject).split()).casefold()


def _date_header(message: Stored) -> datetime:
    try:
        parsed = parsedate_to_datetime(message.header("Date"))
    except (TypeError, ValueError, IndexError):
        return datetime.now(UTC)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
