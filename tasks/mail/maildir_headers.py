"""What the Maildir adapter reads from a message's raw headers: its thread (the root
Message-ID of the References chain), its date in UTC, its labels (the comma-separated
X-Keywords header), and header values as text.

Listing and reading both go through `summarise`, so a message's thread and date are
the same whether it was listed or read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
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


def header_fields(block: bytes) -> dict[str, str]:
    """`raw_headers` of the message's header block as `BytesHeaderParser` (compat32)
    reads it, for the fields it keeps: the bytes as ASCII (others kept as surrogates),
    a field's folded lines joined to its value, leading blanks and the last line ending
    dropped. At half to two thirds of the parser's cost: listings read thousands. The block
    ends as `_header_block` ends it; a From_ line, a line that starts with a colon, and a
    folded line that follows no field are left out."""
    headers: dict[str, str] = {}
    name = b""
    value: list[bytes] = []
    for line in _header_block(block):
        if line[:1] in (b" ", b"\t"):
            if name:
                value.append(line)
            continue
        if name:
            _keep_first(headers, name, value)
            name = b""
        if line.startswith(b"From "):
            continue
        # A field, named by all before its first colon (no name: it is left out, and its
        # folded lines with it).
        name, _, first = line.partition(b":")
        value = [first.lstrip(b" \t")]
    if name:
        _keep_first(headers, name, value)
    return headers


def _keep_first(headers: dict[str, str], name: bytes, value: list[bytes]) -> None:
    headers.setdefault(_as_text(name).lower(), _as_text(b"".join(value).rstrip(b"\r\n")))


def _as_text(raw: bytes) -> str:
    return raw.decode("ascii", "surrogateescape")  # as the parser decodes a message


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


def label_problem(label: str) -> str | None:
    """Why `label` cannot be a label in an X-Keywords field, or None: a control or line
    separating character would end the field (or the header block) when written, an
    encoded word would read back as another text, and a lone surrogate cannot be
    written at all."""
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in label):
        return "a Maildir label has no control character or line break"
    if "=?" in label:
        return "a Maildir label has no '=?' (it would read back as an encoded word)"
    return None


# A line of a header block, as the email package's parser tells it: a field name and its
# colon, a folded line's continuation, or a From_ line. Lines end as the parser ends them.
_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]*:|[\t ])")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")


def with_field(raw: bytes, name: str, value: str) -> bytes:
    """The message's bytes with its `name` fields (each with its folded lines) taken out of
    the header block and `name: value` put before its first field (after a From_ line),
    written as the email package writes it (RFC 2047 words for what is not ASCII, never
    refolded) with the message's own line ending; every other byte as it was. The header
    block ends where the email package's parser ends it: at an empty line, or at a line
    that is no field."""
    lines = list(_header_block(raw))
    start = sum(map(len, lines))
    first_line = _LINE.match(raw)
    newline = _newline_of(first_line.group() if first_line else b"")
    field = compat32.clone(max_line_length=0, linesep=newline.decode()).fold_binary(name, value)
    wanted = name.lower().encode()
    kept: list[bytes] = []
    dropping = False
    for text in lines:
        if text[:1] not in (b" ", b"\t"):
            dropping = text.split(b":", 1)[0].strip().lower() == wanted
        if not dropping:
            kept.append(text)
    # Before the first field: after a From_ line and any stray folded line before it
    # (which would otherwise read as the new field's continuation).
    first = next((n for n, text in enumerate(kept) if _starts_a_field(text)), len(kept))
    return b"".join([*kept[:first], field, *kept[first:]]) + raw[start:]


def _header_block(raw: bytes) -> Iterator[bytes]:
    """The lines of the message's header block, each with its line ending, up to where
    the email package's parser ends the block: an empty line, or a line that is no field
    (the body already)."""
    for line in _LINE.finditer(raw):
        text = line.group()
        if not text.rstrip(b"\r\n") or not _HEADER_LINE.match(text):
            return  # the empty line, or the body already (or the end: an empty match)
        yield text


def _starts_a_field(line: bytes) -> bool:
    return line[:1] not in (b" ", b"\t") and not line.startswith(b"From ")


def _newline_of(line: bytes) -> bytes:
    for newline in (b"\r\n", b"\r", b"\n"):
        if line.endswith(newline):
            return newline
    return b"\n"
