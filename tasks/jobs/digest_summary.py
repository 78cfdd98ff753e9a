"""The `resend.summary` payload and the account it names (docs/JOBS.md, "Digests and
summaries"); the job itself is in `digest`.

Our hourly fan-out names the account by `emailAccountId`. The replaced app's fan-out sent
`{"email": ...}` instead, and messages it queued still arrive: such an account is looked
up by its address, in any case. A payload with neither field is invalid.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bridge.payload import Address, Id, Payload
from bridge.store.db import session_scope
from tasks.account_lookup import stored_account


class SendSummary(Payload):
    """The account by `emailAccountId`, or by `email`; with both, emailAccountId wins."""

    # What the validators below require, said to the JSON schema too: one is a string.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("emailAccountId", "email")
            ]
        }
    )

    email: Address | None = None
    email_account_id: Id | None = None  # after `email`, so its validator can read it

    @model_validator(mode="before")
    @classmethod
    def _absent_id_as_null(cls, data: Any) -> Any:
        # An absent emailAccountId is validated as null, so that its error names it by its
        # wire name (an error of a default would name it by its Python one).
        if isinstance(data, dict) and not {"emailAccountId", "email_account_id"} & set(data):
            return {**data, "emailAccountId": None}
        return data

    @field_validator("email_account_id")
    @classmethod
    def _one_names_the_account(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("email") is None:
            raise PydanticCustomError("missing", "required (or email, as the replaced app sent)")
        return value


def summary_account_id(payload: SendSummary) -> str | None:
    """The id of the account the payload names; None when its `email` is no account's."""
    if payload.email_account_id is not None:
        return payload.email_account_id
    address = (payload.email or "").strip()
    with session_scope() as session:
        account = stored_account(session, address)
        return None if account is None else account.id
