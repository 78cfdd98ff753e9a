"""Who may call a job route (QStash's signature or direct HTTP's key) or a cron route."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.http.auth import Unauthorized, same_secret
from bridge.http.wire import API_KEY_HEADER
from bridge.qstash.auth import InvalidSignature, SignedToken, verify_qstash
from bridge.qstash.wire import SIGNATURE_HEADER
from config import Provider, Settings

__all__ = ["Unauthorized", "authenticate_cron", "authenticate_job_call", "same_secret"]


def authenticate_job_call(
    settings: Settings, headers: Mapping[str, str], raw_body: bytes, route: str
) -> tuple[Provider, SignedToken | None]:
    """A valid Upstash-Signature (with its token), or an x-api-key equal to
    INTERNAL_API_KEY; else Unauthorized."""
    signature = headers.get(SIGNATURE_HEADER)
    if signature is not None:  # present, even empty: a QStash call, verified as one
        try:
            return Provider.QSTASH, verify_qstash(settings, signature, raw_body, route)
        except InvalidSignature as error:
            raise Unauthorized(str(error)) from None
    api_key = headers.get(API_KEY_HEADER)
    if api_key:
        if same_secret(api_key, settings.internal_api_key):
            return Provider.HTTP, None
        raise Unauthorized(f"invalid {API_KEY_HEADER}")
    raise Unauthorized(f"missing Upstash-Signature or {API_KEY_HEADER}")


def authenticate_cron(settings: Settings, headers: Mapping[str, str]) -> None:
    if settings.cron_secret is None:
        raise Unauthorized("CRON_SECRET is not set, so cron routes accept nobody")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(token.strip(), settings.cron_secret):
        raise Unauthorized("invalid or missing Bearer token")
