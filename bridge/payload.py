"""Base model for job payloads: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from bridge.store.columns import ADDRESS_LENGTH, EXTERNAL_LENGTH, ID_LENGTH

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _storable(value: str) -> str:
    # What PostgreSQL text cannot hold is refused here as bad input, not later as an
    # error of the database or its driver: NUL, and lone surrogates (not UTF-8).
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "must be valid Unicode text (no lone surrogates such as \\ud800)"
        ) from None
    return value


def _one_line(value: str) -> str:
    # Ids, labels and addresses end up in headers and file names: no line breaks or other
    # control characters.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks, tabs, ...)")
    return value


def _date_time_text(value: Any) -> Any:
    # Pydantic would read a number as seconds since 1970; the wire format is ISO 8601 text.
    if isinstance(value, str | datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-01-31T09:00:00Z")


def _representable_in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00+14:00 parses, but lies before the first moment a UTC datetime holds.
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None
    return value


# A date-time as the wire carries it (what the JSON schema says): text, never a number.
Timestamp = Annotated[
    datetime, BeforeValidator(_date_time_text), AfterValidator(_representable_in_utc)
]

# String fields by the column they feed: the payload refuses what the column would. The
# validators say why in words; the patterns say the same to the JSON schema, so that
# generated clients and schema-driven fuzzers know it. Lone surrogates (a JSON escape
# such as \ud800) are refused by the validators only: a surrogate range is a pattern
# fuzzers cannot use, and they would drop the whole pattern, control characters included.
Storable = AfterValidator(_storable)
OneLine = AfterValidator(_one_line)
_STORABLE_SCHEMA = Field(json_schema_extra={"pattern": "^[^\\x00]*$"})
_ONE_LINE_SCHEMA = Field(json_schema_extra={"pattern": "^[^\\x00-\\x1f\\x7f]*$"})
Text = Annotated[str, Storable, _STORABLE_SCHEMA]
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ID_LENGTH),
    Storable,
    OneLine,
    _ONE_LINE_SCHEMA,
]
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=EXTERNAL_LENGTH),
    Storable,
    OneLine,
    _ONE_LINE_SCHEMA,
]
Address = Annotated[
    str, StringConstraints(max_length=ADDRESS_LENGTH), Storable, OneLine, _ONE_LINE_SCHEMA
]


class Payload(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def describe_validation_error(error: ValidationError) -> str:
    """One line naming every bad field by its wire name, e.g. `scheduledActionId: missing`."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "payload"
        parts.append(f"{field}: {item['msg']}")
    return "invalid payload: " + "; ".join(parts)
