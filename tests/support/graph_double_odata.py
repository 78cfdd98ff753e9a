"""The part of OData's $filter and $orderby the Graph double understands, as Graph
documents them for messages and mail folders: comparisons joined by `and`, string
literals in single quotes ('' for a quote), DateTimeOffset literals in UTC, and the
`categories/any(c:c eq '...')` lambda, negated with not(...).

Anything else is an error the double answers with 400 and records as a violation: the
adapter must only send what Graph documents. Graph's own rule for $orderby is checked
too: a property in $orderby must also be in $filter, before any other property
(otherwise Graph answers 400 InefficientFilter).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_TEXT = r"'((?:[^']|'')*)'"
_DATE = re.compile(
    r"^(receivedDateTime|sentDateTime) (eq|ne|ge|gt|le|lt) "
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z)$"
)
_BOOL = re.compile(r"^(isRead|isDraft|hasAttachments) (eq|ne) (true|false)$")
_STRING = re.compile(rf"^(conversationId|internetMessageId|subject|displayName) (eq|ne) {_TEXT}$")
_ANY = re.compile(rf"^categories/any\((\w+)\s*:\s*\1 eq {_TEXT}\)$")
_NOT_ANY = re.compile(rf"^not\(\s*categories/any\((\w+)\s*:\s*\1 eq {_TEXT}\)\s*\)$")
_ORDER = re.compile(r"^(receivedDateTime|sentDateTime|displayName)( asc| desc)?$")

MESSAGE_FILTERABLE = frozenset(
    {"receivedDateTime", "sentDateTime", "isRead", "isDraft", "hasAttachments",
     "conversationId", "internetMessageId", "subject", "categories"}
)  # fmt: skip
FOLDER_FILTERABLE = frozenset({"displayName"})


class ODataError(ValueError):
    """A query Graph would refuse: its error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Filter:
    properties: list[str]  # in the order the clauses name them
    predicates: list[Predicate]

    def __call__(self, item: dict[str, Any]) -> bool:
        return all(predicate(item) for predicate in self.predicates)


def _text(literal: str) -> str:
    return literal.replace("''", "'")


def _when(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


def split_and(expression: str) -> list[str]:
    """The clauses of `a and b and c`, outside quotes and parentheses."""
    clauses, depth, quoted, start, index = [], 0, False, 0, 0
    while index < len(expression):
        char = expression[index]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and expression.startswith(" and ", index):
            clauses.append(expression[start:index].strip())
            index += 5
            start = index
            continue
        index += 1
    clauses.append(expression[start:].strip())
    if quoted or depth != 0 or not all(clauses):
        raise ODataError("BadRequest", f"Invalid filter clause: {expression!r}")
    return clauses


def _clause(clause: str) -> tuple[str, Predicate]:
    if match := _DATE.match(clause):
        name, op, literal = match.groups()
        moment = _when(literal)
        return name, lambda m: name in m and _COMPARE[op](_when(m[name]), moment)
    if match := _BOOL.match(clause):
        name, op, literal = match.groups()
        wanted = literal == "true"
        return name, lambda m: _COMPARE[op](bool(m.get(name)), wanted)
    if match := _STRING.match(clause):
        name, op, literal = match.groups()
        text = _text(literal)
        return name, lambda m: _COMPARE[op](m.get(name), text)
    if match := _ANY.match(clause):
        category = _text(match.group(2))
        return "categories", lambda m: category in (m.get("categories") or [])
    if match := _NOT_ANY.match(clause):
        category = _text(match.group(2))
        return "categories", lambda m: category not in (m.get("categories") or [])
    raise ODataError("BadRequest", f"Invalid filter clause: {clause!r}")


def parse_filter(expression: str, filterable: frozenset[str]) -> Filter:
    properties: list[str] = []
    predicates: list[Predicate] = []
    for clause in split_and(expression):
        name, predicate = _clause(clause)
        if name not in filterable:
            raise ODataError("BadRequest", f"Could not find a property named '{name}'")
        properties.append(name)
        predicates.append(predicate)
    return Filter(properties, predicates)


def parse_orderby(expression: str, filtered: Filter | None) -> tuple[str, bool]:
    """(property, descending); Graph's rule for $orderby with $filter checked."""
    match = _ORDER.match(expression.strip())
    if match is None:
        raise ODataError("BadRequest", f"Invalid $orderby: {expression!r}")
    name, direction = match.group(1), (match.group(2) or " asc").strip()
    if filtered is not None and (not filtered.properties or filtered.properties[0] != name):
        raise ODataError("InefficientFilter", "The restriction or sort order is too complex.")
    return name, direction == "desc"
