"""The Gmail search operators the double understands (the ones the adapter uses), each
as Gmail documents it: `after:` and `before:` (epoch seconds, or YYYY/MM/DD in UTC),
`is:unread|read|starred|important`, `in:inbox|sent|drafts|trash|spam|anywhere`,
`label:name` (any case, spaces or slashes as hyphens, quoted names too), and
`rfc822msgid:` (with or without angle brackets); `-` negates a term, terms are ANDed.
Anything else is refused (UnsupportedQuery), so a test never passes on a search the
double silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.gmail_store import Stored

_TERM = re.compile(r'(-?)([A-Za-z0-9_]+):("[^"]*"|\S+)|(\S+)')
_IS = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}
_IN = {"inbox": "INBOX", "sent": "SENT", "drafts": "DRAFT", "trash": "TRASH", "spam": "SPAM"}


class UnsupportedQuery(ValueError):
    """A search the double does not implement."""


def label_key(name: str) -> str:
    """A label name as Gmail's search compares it: any case, spaces and slashes as '-'."""
    return re.sub(r"[\s/]+", "-", name.strip()).casefold()


@dataclass(frozen=True)
class Term:
    negated: bool
    operator: str
    value: str


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]
    label_names: dict[str, str]  # label_key(name) -> label id

    @classmethod
    def parse(cls, q: str, labels: dict[str, dict[str, Any]]) -> Query:
        terms = []
        for found in _TERM.finditer(q or ""):
            if found[4] is not None:
                raise UnsupportedQuery(f"the Gmail double does not search for {found[4]!r}")
            value = found[3][1:-1] if found[3].startswith('"') else found[3]
            term = Term(found[1] == "-", found[2].lower(), value)
            _validate(term)
            terms.append(term)
        names = {label_key(str(label["name"])): str(label["id"]) for label in labels.values()}
        return cls(tuple(terms), names)

    @property
    def names_spam_or_trash(self) -> bool:
        """Whether the search itself asks for Spam or Trash (Gmail then includes them)."""
        return any(
            not term.negated
            and term.operator in ("in", "label")
            and term.value.lower() in ("trash", "spam", "anywhere")
            for term in self.terms
        )

    def matches(self, message: Stored, labels: set[str]) -> bool:
        return all(self._holds(term, message, labels) != term.negated for term in self.terms)

    def _holds(self, term: Term, message: Stored, labels: set[str]) -> bool:
        value = term.value.lower()
        match term.operator:
            case "after":
                return message.internal_date >= _seconds(term.value) * 1000
            case "before":
                return message.internal_date < _seconds(term.value) * 1000
            case "is" if value == "read":
                return "UNREAD" not in labels
            case "is":
                return _IS[value] in labels
            case "in" if value == "anywhere":
                return True
            case "in":
                return _IN[value] in labels
            case "label":
                label = self.label_names.get(label_key(term.value))
                return label is not None and label in labels
            case "rfc822msgid":
                own = message.header("Message-ID").strip().strip("<>").casefold()
                return own == term.value.strip("<>").casefold()
        raise AssertionError(term)


def _validate(term: Term) -> None:
    value = term.value.lower()
    known = (
        (term.operator in ("after", "before") and _is_moment(term.value))
        or (term.operator == "is" and value in (*_IS, "read"))
        or (term.operator == "in" and value in (*_IN, "anywhere"))
        or (term.operator in ("label", "rfc822msgid") and bool(value))
    )
    if not known:
        raise UnsupportedQuery(
            f"the Gmail double does not search for {term.operator}:{term.value!r}"
        )


def _is_moment(value: str) -> bool:
    try:
        _seconds(value)
    except ValueError:
        return False
    return True


def _seconds(value: str) -> int:
    if value.isdigit():
        return int(value)
    day = datetime.strptime(value, "%Y/%m/%d").replace(tzinfo=UTC)
    return int(day.timestamp())
