"""Which entries of a sender list are usable addresses: one decision for the producer
(`categorize_senders`) and the job (`categorize.senders-batch`) alike.

The replaced app put "" in `senders` when it could not parse a From line, and may repeat
an address; one such entry must not fail a batch of 50. So the payload takes any strings
and each entry is judged here: normalised as Sender.email is stored (stripped,
lower-cased), then kept only if it is one plain address the column can hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.store.columns import ADDRESS_LENGTH

# Email-ish, not RFC 5322: one "@" with something on both sides, no spaces or list
# separators, so a display name ("Ann <a@b>") or two addresses in one string are left out.
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL, line breaks and the like
SHOWN = 5  # unusable entries a detail names; the rest are only counted
SHOWN_CHARS = 40  # of each, so a long junk entry cannot swell the detail


def usable_sender(entry: str) -> str | None:
    """The entry as a Sender.email (stripped, lower-cased), or None when it is not a
    usable address: blank, a display-name form or a list, control characters or NUL,
    text PostgreSQL cannot store (a lone surrogate), or longer than the column."""
    address = entry.strip().lower()
    if len(address) > ADDRESS_LENGTH or _CONTROL.search(address):
        return None
    if not _ADDRESS.fullmatch(address):
        return None
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return address


@dataclass(frozen=True)
class SortedSenders:
    usable: list[str]  # distinct normalised addresses, in the order first seen
    unusable: list[str]  # distinct entries as given, in the order first seen


def sort_senders(entries: Iterable[str]) -> SortedSenders:
    """Usable addresses, each once, apart from the entries left out."""
    usable: dict[str, None] = {}
    unusable: dict[str, None] = {}
    for entry in entries:
        address = usable_sender(entry)
        if address is None:
            unusable[entry] = None
        else:
            usable[address] = None
    return SortedSenders(list(usable), list(unusable))


def describe_unusable(unusable: Sequence[str]) -> str:
    """e.g. `2 unusable senders left out: '', 'Ann <ann@b.test>'`; "" for none.

    Each entry is shortened and shown as a Python literal, so NUL, line breaks and lone
    surrogates are escaped: the detail stays one short line any store can hold.
    """
    if not unusable:
        return ""
    shown = [repr(_shorten(entry)) for entry in unusable[:SHOWN]]
    more = len(unusable) - len(shown)
    noun = "sender" if len(unusable) == 1 else "senders"
    tail = f" and {more} more" if more else ""
    return f"{len(unusable)} unusable {noun} left out: {', '.join(shown)}{tail}"


def _shorten(entry: str) -> str:
    return entry if len(entry) <= SHOWN_CHARS else entry[: SHOWN_CHARS - 1] + "…"
