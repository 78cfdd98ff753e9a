"""Who may call a route: QStash (signed JWT), a direct caller (x-api-key), a cron (Bearer)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import jwt
from pydantic import SecretStr
from qstash import Receiver

from config import Settings


class Caller(StrEnum):
    QSTASH = "qstash"
    HTTP = "http"


class Unauthorized(Exception):
    pass


def same_secret(given: str, expected: SecretStr | None) -> bool:
    if expected is None or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


@dataclass(frozen=True)
class SignedToken:
    """The verified QStash token's id and expiry: each token serves one message."""

    token_id: str
    expires_at: datetime


def authenticate_job_call(
    settings: Settings, headers: Mapping[str, str], raw_body: bytes, route: str
) -> tuple[Caller, SignedToken | None]:
    """A valid Upstash-Signature (with its token), or an x-api-key equal to
    INTERNAL_API_KEY; else Unauthorized."""
    signature = headers.get("upstash-signature")
    if signature is not None:  # present, even empty: a QStash call, verified as one
        return Caller.QSTASH, verify_qstash(settings, signature, raw_body, route)
    api_key = headers.get("x-api-key")
    if api_key:
        if same_secret(api_key, settings.internal_api_key):
            return Caller.HTTP, None
        raise Unauthorized("invalid x-api-key")
    raise Unauthorized("missing Upstash-Signature or x-api-key")


def authenticate_internal(settings: Settings, headers: Mapping[str, str]) -> None:
    """Internal API routes (bulk start, cancel): only callers holding INTERNAL_API_KEY."""
    if not same_secret(headers.get("x-api-key", ""), settings.internal_api_key):
        raise Unauthorized("missing or invalid x-api-key")


def verify_qstash(settings: Settings, signature: str, raw_body: bytes, route: str) -> SignedToken:
    current, upcoming = settings.qstash_current_signing_key, settings.qstash_next_signing_key
    if current is None or upcoming is None or settings.webhook_url is None:
        raise Unauthorized("QStash signing keys or WEBHOOK_URL are not configured")
    receiver = Receiver(current.get_secret_value(), upcoming.get_secret_value())
    try:
        # The signed `sub` is the public URL QStash called: rebuilt from WEBHOOK_URL,
        # never from the request, which a proxy may have rewritten.
        receiver.verify(
            signature=signature,
            body=raw_body.decode("utf-8"),
            url=settings.webhook_url + route,
        )
    except Exception as error:  # the SDK raises KeyError and friends, not only SignatureError
        raise Unauthorized(f"invalid Upstash-Signature: {type(error).__name__}") from None
    # Verified above: read the claims the SDK does not return.
    claims = jwt.decode(signature, options={"verify_signature": False})
    token_id, expires = claims.get("jti"), claims.get("exp")
    if not isinstance(token_id, str) or not token_id or not isinstance(expires, int):
        raise Unauthorized("invalid Upstash-Signature: no jti or exp claim")
    try:
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        raise Unauthorized("invalid Upstash-Signature: exp out of range") from None
    return SignedToken(token_id, expires_at)


def authenticate_cron(settings: Settings, headers: Mapping[str, str]) -> None:
    if settings.cron_secret is None:
        raise Unauthorized("CRON_SECRET is not set, so cron routes accept nobody")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(token.strip(), settings.cron_secret):
        raise Unauthorized("invalid or missing Bearer token")
