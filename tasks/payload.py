"""Base model for job payloads: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


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
