"""Base model for job payloads: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from tasks.models.base import ADDRESS_LENGTH, EXTERNAL_LENGTH, ID_LENGTH


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here as bad input, not later as a DB error.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _date_time_text(value: Any) -> Any:
    # Pydantic would read a number as seconds since 1970; the wire format is ISO 8601 text.
    if isinstance(value, str | datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-01-31T09:00:00Z")


# A date-time as the wire carries it (what the JSON schema says): text, never a number.
Timestamp = Annotated[datetime, BeforeValidator(_date_time_text)]

# String fields by the column they feed: the payload refuses what the column would.
NoNul = AfterValidator(_no_nul)
Text = Annotated[str, NoNul]
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH), NoNul]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=EXTERNAL_LENGTH), NoNul]
Address = Annotated[str, StringConstraints(max_length=ADDRESS_LENGTH), NoNul]


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
