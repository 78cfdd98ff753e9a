"""Who may call a job route (QStash's signature or direct HTTP's key) or a cron route."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.http.auth import Unauthorized, same_secret
from bridge.http.wire import API_KEY_HEADER
from bridge.qstash.auth import (
    NOT_CONFIGURED,
    NOT_OUR_KEYS,
    InvalidSignature,
    SignedToken,
    can_verify,
    signed_by_a_key,
    verify_qstash,
)
from bridge.qstash.wire import SIGNATURE_HEADER
from config import Provider, Settings

__all__ = ["Unauthorized", "authenticate_cron", "job_caller", "same_secret", "verify_job_call"]


def job_caller(settings: Settings, headers: Mapping[str, str]) -> Provider:
    """Who calls a job route, as far as that is known before its body is read: QStash
    when an Upstash-Signature is present, even empty, and one of this app's signing keys
    made it (its claims and the body's hash verified with the body by
    `verify_job_call`), a direct caller whose x-api-key is INTERNAL_API_KEY; else
    Unauthorized, and the body is never read."""
    if SIGNATURE_HEADER in headers:
        if not can_verify(settings):  # no body is worth reading for it
            raise Unauthorized(NOT_CONFIGURED)
        if not signed_by_a_key(settings, headers[SIGNATURE_HEADER]):
            raise Unauthorized(NOT_OUR_KEYS)
        return Provider.QSTASH
    api_key = headers.get(API_KEY_HEADER)
    if api_key:
        if same_secret(api_key, settings.internal_api_key):
            return Provider.HTTP
        raise Unauthorized(f"invalid {API_KEY_HEADER}")
    raise Unauthorized(f"missing Upstash-Signature or {API_KEY_HEADER}")


def verify_job_call(
    settings: Settings, caller: Provider, headers: Mapping[str, str], raw_body: bytes, route: str
) -> SignedToken | None:
    """The QStash signature's token once it verifies over `raw_body` and `route` (None
    for a direct caller, whose key `job_caller` checked); else Unauthorized."""
    if caller is not Provider.QSTASH:
        return None
    try:
        return verify_qstash(settings, headers[SIGNATURE_HEADER], raw_body, route)
    except InvalidSignature as error:
        raise Unauthorized(str(error)) from None


def authenticate_cron(settings: Settings, headers: Mapping[str, str]) -> None:
    if settings.cron_secret is None:
        raise Unauthorized("CRON_SECRET is not set, so cron routes accept nobody")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(token.strip(), settings.cron_secret):
        raise Unauthorized("invalid or missing Bearer token")
