"""What the Graph double checks in a request, and how it answers: the shapes shared by
its endpoints (`graph_double_api`) and its server (`graph_double`)."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.support.graph_double_store import now_text

_RECIPIENTS = ("toRecipients", "ccRecipients", "bccRecipients", "replyTo")


@dataclass
class Call:
    method: str
    segments: list[str]  # the path under /v1.0, decoded
    query: dict[str, str]
    body: Any
    immutable: bool  # Prefer: IdType="ImmutableId"
    batched: bool = False
    problem: str | None = None  # what makes it malformed, found before it is handled

    @property
    def route(self) -> str:
        return f"{self.method} /{'/'.join(self.segments)}"


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str) -> Answer:
    inner = {"date": now_text(), "request-id": str(uuid.uuid4())}
    return Answer(status, {"error": {"code": code, "message": message, "innerError": inner}})


class Refused(Exception):
    """A request Graph would refuse; `violation` when the adapter should never send it."""

    def __init__(self, answer: Answer, violation: bool = True) -> None:
        super().__init__(answer.body)
        self.answer, self.violation = answer, violation


def bad(message: str, code: str = "BadRequest") -> Refused:
    return Refused(error(400, code, message))


def not_found() -> Refused:
    return Refused(
        error(404, "ErrorItemNotFound", "The specified object was not found in the store."),
        violation=False,
    )


def check_object(value: Any, *, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad("The request body must be a JSON object")
    unknown = set(value) - allowed
    if unknown:
        raise bad(f"Property(s) {sorted(unknown)} not allowed here")
    missing = required - set(value)
    if missing:
        raise bad(f"Property(s) {sorted(missing)} required")
    return value


def check_message(message: dict[str, Any]) -> None:
    for name in _RECIPIENTS:
        for item in message.get(name, []):
            email = item.get("emailAddress") if isinstance(item, dict) else None
            if not isinstance(email, dict) or not isinstance(email.get("address"), str):
                raise bad(f"{name} must be recipients: {{emailAddress: {{address}}}}")
            if set(email) - {"address", "name"}:
                raise bad(f"{name}: unknown emailAddress properties")
    body = message.get("body")
    if body is not None and (
        not isinstance(body, dict)
        or set(body) != {"contentType", "content"}
        or str(body["contentType"]).lower() not in ("text", "html")
        or not isinstance(body["content"], str)
    ):
        raise bad("body must be {contentType: text|html, content}")
    if body is not None:  # stored as Graph answers it: the content type in lower case
        message["body"] = {"contentType": body["contentType"].lower(), "content": body["content"]}
    header = message.get("internetMessageId")
    if header is not None and (
        not isinstance(header, str)
        or not (header.startswith("<") and header.endswith(">") and "@" in header)
    ):
        raise bad("internetMessageId must be <id@domain>", "InvalidInternetMessageId")
    for item in message.get("internetMessageHeaders", []):
        if not str(item.get("name", "")).lower().startswith("x-"):
            raise bad("Only x- headers may be set", "InvalidInternetMessageHeader")


def selected(value: str | None, known: frozenset[str]) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise bad(f"Could not find a property named '{unknown[0]}'", "RequestBroker--ParseUri")
    return names


def pick(data: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    return dict(data) if select is None else {k: data[k] for k in ["id", *select] if k in data}


def number(value: str, low: int, high: int, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise bad(f"{name} must be a number") from None
    if not low <= number <= high:
        raise bad(f"{name} must be from {low} to {high}")
    return number


def skip_of(query: dict[str, str]) -> int:
    if "$skiptoken" in query:
        try:
            text = base64.urlsafe_b64decode(query["$skiptoken"]).decode()
        except (binascii.Error, UnicodeError, ValueError):
            raise bad("Invalid $skiptoken") from None
        if not text.startswith("skip:") or not text[5:].isdigit():
            raise bad("Invalid $skiptoken")
        return int(text[5:])
    return number(query.get("$skip", "0"), 0, 10**9, "$skip")


def stamp(moment: datetime | None) -> str:
    """Graph's receivedDateTime text for a moment (whole seconds, UTC)."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
