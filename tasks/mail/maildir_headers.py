"""What the Maildir adapter reads from a message's raw headers: its thread (the root
Message-ID of the References chain), its date in UTC, its labels (the comma-separated
X-Keywords header), and header values as text.

Listing and reading both go through `summarise`, so a message's thread and date are
the same whether it was listed or read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.policy import compat32
from email.utils import parsedate_to_datetime

LABELS_HEADER = "X-Keywords"
# What `summarise` makes of a header block: change it with `summarise`, so that summaries
# another process shared (`maildir_shared_summaries`) are not taken for new ones.
SUMMARY_VERSION = 1

_FOLD = re.compile(r"\r?\n(?=[ \t])")


@dataclass(frozen=True)
class Summary:
    """What listing and threading need from a message: its headers only, never the body."""

    thread_id: str
    date: datetime
    labels: frozenset[str]
    message_id: str
    references: tuple[str, ...]


def raw_headers(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Lower-cased name -> raw value; the first occurrence wins (the newest Received)."""
    headers: dict[str, str] = {}
    for name, value in items:
        headers.setdefault(name.lower(), str(value))
    return headers


def summarise(raw: dict[str, str], key: str, mtime: float) -> Summary:
    """The summary of a message from its raw headers, its Maildir key and its file's
    mtime (the date when no Date header parses)."""
    references = tuple(unfold(raw.get("references", "")).split())
    own = unfold(raw.get("message-id", ""))
    return Summary(
        thread_id=references[0] if references else own or key,
        date=_date(raw.get("date"), mtime),
        labels=frozenset(split_labels(header_text(raw.get(LABELS_HEADER.lower(), "")))),
        message_id=own,
        references=references,
    )


def _date(value: str | None, mtime: float) -> datetime:
    if value:
        try:
            parsed = parsedate_to_datetime(unfold(value))
        except (ValueError, TypeError, IndexError, OverflowError):
            parsed = None  # unparseable: the file's arrival time is the best we have
        if parsed is not None:
            return as_utc(parsed)
    return datetime.fromtimestamp(mtime, UTC)


def as_utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive one is taken as UTC already."""
    # Naive is taken as UTC: a "-0000" Date zone parses naive, and RFC 5322 means UTC by it.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def unfold(value: str) -> str:
    """A raw header value on one line, without surrounding whitespace."""
    return _FOLD.sub("", value).strip()


def header_text(raw: str) -> str:
    """A raw header value as text: unfolded, RFC 2047 words decoded, raw 8-bit read as UTF-8."""
    value = unfold(raw)
    # The parser keeps undeclared 8-bit bytes as surrogates; most such mail is UTF-8.
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError):
        return value  # a malformed or unknown-charset word: the raw text beats nothing


def split_labels(value: str) -> list[str]:
    """The labels of an X-Keywords value, in order, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


# A line of a header block, as the email package's parser tells it: a field name and its
# colon, a folded line's continuation, or a From_ line.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")


def with_field(raw: bytes, name: str, value: str) -> bytes:
    """The message's bytes with its `name` fields (each with its folded lines) taken out of
    the header block and `name: value` put first (after a From_ line), written as the email
    package writes it (RFC 2047 words for what is not ASCII, never refolded) with the
    message's own line ending; every other byte as it was, so that a signature over the
    rest (DKIM) still holds."""
    newline = b"\r\n" if raw[: raw.find(b"\n") + 1].endswith(b"\r\n") else b"\n"
    fold = compat32.clone(max_line_length=0, linesep=newline.decode())
    field = fold.fold_binary(name, value)
    wanted = name.lower().encode()
    kept: list[bytes] = []
    start, dropping = 0, False
    while start < len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end + 1
        line = raw[start:end]
        if not line.strip(b"\r\n") or not _HEADER_LINE.match(line):
            break  # the empty line after the header block, or the body already
        if line[:1] not in (b" ", b"\t"):
            dropping = line.split(b":", 1)[0].strip().lower() == wanted
        if not dropping:
            kept.append(line)
        start = end
    first = 1 if kept and kept[0].startswith(b"From ") else 0
    return b"".join([*kept[:first], field, *kept[first:]]) + raw[start:]
