"""The base of every settings model: a variable set blank is a variable unset.

`.env.example` lists every variable as `NAME=`, and a copy of it with a line emptied
must mean the default, never a refusal of "" as a number, a choice or a URL (nor ""
taken as a value: the Inngest SDK would take it as an origin, a key as a key).
"""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator
from pydantic_settings import BaseSettings


class EnvironmentSettings(BaseSettings):
    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_the_default(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[str(info.field_name)].default
        return value
