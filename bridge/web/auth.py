"""Who may call a route: QStash (signed JWT), a direct caller (x-api-key), a cron (Bearer)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from enum import StrEnum
from urllib.parse import parse_qs

from pydantic import SecretStr
from qstash import Receiver

from config import Settings

# The Inngest SDK checks the signature but not its age: we refuse replays older than this.
INNGEST_SIGNATURE_MAX_AGE_SECONDS = 300


class Caller(StrEnum):
    QSTASH = "qstash"
    HTTP = "http"


class Unauthorized(Exception):
    pass


def _same_secret(given: str, expected: SecretStr | None) -> bool:
    if expected is None or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def authenticate_job_call(
    settings: Settings, headers: Mapping[str, str], raw_body: bytes, route: str
) -> Caller:
    """A valid Upstash-Signature, or an x-api-key equal to INTERNAL_API_KEY; else Unauthorized."""
    signature = headers.get("upstash-signature")
    if signature:
        verify_qstash(settings, signature, raw_body, route)
        return Caller.QSTASH
    api_key = headers.get("x-api-key")
    if api_key:
        if _same_secret(api_key, settings.internal_api_key):
            return Caller.HTTP
        raise Unauthorized("invalid x-api-key")
    raise Unauthorized("missing Upstash-Signature or x-api-key")


def authenticate_internal(settings: Settings, headers: Mapping[str, str]) -> None:
    """Internal API routes (bulk start, cancel): only callers holding INTERNAL_API_KEY."""
    if not _same_secret(headers.get("x-api-key", ""), settings.internal_api_key):
        raise Unauthorized("missing or invalid x-api-key")


def verify_qstash(settings: Settings, signature: str, raw_body: bytes, route: str) -> None:
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


def authenticate_cron(settings: Settings, headers: Mapping[str, str]) -> None:
    if settings.cron_secret is None:
        raise Unauthorized("CRON_SECRET is not set, so cron routes accept nobody")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same_secret(token.strip(), settings.cron_secret):
        raise Unauthorized("invalid or missing Bearer token")


def inngest_signature_too_old(header: str | None, now: float | None = None) -> bool:
    """True when X-Inngest-Signature carries a timestamp over 5 minutes from now."""
    if not header:
        return False  # unsigned: the SDK itself answers 401 in cloud mode
    try:
        timestamp = int(parse_qs(header)["t"][0])
    except (KeyError, ValueError, IndexError):
        return True
    now = time.time() if now is None else now
    return abs(now - timestamp) > INNGEST_SIGNATURE_MAX_AGE_SECONDS
