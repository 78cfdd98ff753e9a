"""QStash callers prove themselves with `Upstash-Signature`: a JWT over the body and URL,
verified by bridge/qstash/minted_tokens.py when it has the shape QStash mints, else by
the SDK's `Receiver`."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from qstash import Receiver

from bridge.qstash import minted_tokens
from config import Settings


class InvalidSignature(Exception):
    """The signature does not verify, or QStash's keys are not configured: answered 401."""


@dataclass(frozen=True)
class SignedToken:
    """The verified QStash token's id and expiry: each token serves one request."""

    token_id: str
    expires_at: datetime


NOT_CONFIGURED = "QStash signing keys or WEBHOOK_URL are not configured"
NOT_OUR_KEYS = "invalid Upstash-Signature: not made with this app's QStash signing keys"


def _configured(settings: Settings) -> tuple[str, str, str] | None:
    """Both signing keys and the public URL QStash signs; None when any is not set."""
    current, upcoming = settings.qstash_current_signing_key, settings.qstash_next_signing_key
    if current is None or upcoming is None or settings.webhook_url is None:
        return None
    return current.get_secret_value(), upcoming.get_secret_value(), settings.webhook_url


def can_verify(settings: Settings) -> bool:
    """Whether a QStash signature can be checked here at all."""
    return _configured(settings) is not None


def signed_by_a_key(settings: Settings, token: str) -> bool:
    """Whether `token`'s HMAC-SHA256 was made with one of the two signing keys: the
    check a job route makes before it reads a body, so that a made-up token costs no
    read. Its claims, its algorithm and the body's hash are the SDK's to verify after
    (`verify_qstash`); an HMAC over a few hundred bytes costs microseconds."""
    configured = _configured(settings)
    head, dot, signature = token.rpartition(".")
    if configured is None or not dot:
        return False
    try:
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except ValueError:  # not base64url, or not ASCII
        return False
    signed = head.encode("utf-8", "surrogateescape")  # as PyJWT hashes it
    return minted_tokens.made_with(configured[:2], signed, given) is not None


def verify_qstash(settings: Settings, signature: str, raw_body: bytes, route: str) -> SignedToken:
    configured = _configured(settings)
    if configured is None:
        raise InvalidSignature(NOT_CONFIGURED)
    current, upcoming, webhook_url = configured
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        # QStash's signature covers the body as text: these bytes cannot be checked.
        raise InvalidSignature("a signed body must be UTF-8 text: this one is not") from None
    # The signed `sub` is the public URL QStash called: rebuilt from WEBHOOK_URL, never
    # from the request, which a proxy may have rewritten.
    url = webhook_url + route
    claims = minted_tokens.verified_claims((current, upcoming), signature, text, url)
    if claims is None:  # not the shape QStash mints: the SDK decides
        claims = _verified_by_the_sdk(Receiver(current, upcoming), signature, text, url)
    token_id, expires = claims.get("jti"), claims.get("exp")
    if not isinstance(token_id, str) or not token_id or not isinstance(expires, int):
        raise InvalidSignature("invalid Upstash-Signature: no jti or exp claim")
    try:
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidSignature("invalid Upstash-Signature: exp out of range") from None
    return SignedToken(token_id, expires_at)


def _verified_by_the_sdk(
    receiver: Receiver, signature: str, text: str, url: str
) -> dict[str, object]:
    try:
        receiver.verify(signature=signature, body=text, url=url)
    except Exception as error:  # the SDK raises KeyError and friends, not only SignatureError
        raise InvalidSignature(f"invalid Upstash-Signature: {type(error).__name__}") from None
    return _verified_claims(signature)


def _verified_claims(token: str) -> dict[str, object]:
    """The claims of a token the SDK verified, which it does not return: the middle
    segment read as base64url JSON (a second PyJWT decode cost as much again)."""
    try:
        segment = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError) as error:
        raise InvalidSignature(f"invalid Upstash-Signature: {type(error).__name__}") from None
    if not isinstance(claims, dict):
        raise InvalidSignature("invalid Upstash-Signature: claims are not an object")
    return claims
