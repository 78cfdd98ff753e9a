"""The tokens QStash mints, verified directly: the same checks the SDK's
`Receiver.verify` makes through PyJWT, for the one shape QStash signs.

Every `Upstash-Signature` QStash sends has the header `{"alg":"HS256","typ":"JWT"}`
and the claims iss="Upstash", sub, body, exp, nbf, iat and jti, in base64url without
padding. For a token of exactly that shape, `verified_claims` checks what the SDK
checks: an HMAC-SHA256 made with one of the signing keys, the issuer, the required
claims, nbf and iat not in the future, exp not past, sub the URL called and body the
sha256 of the text. PyJWT's general decoder costs about 55 µs a token (a check of
each character, key-format checks, three JSON parses), a sixth of a delivery's CPU;
these checks cost a few.

Anything else (another header, a claim missing, of another type or unknown, padding,
base64 that is not canonical, a time out of range, a key PyJWT would refuse or warn
about) is answered None, and the SDK decides: this path only ever accepts what the SDK
accepts (tests/bridge/test_qstash_minted_tokens.py checks that against the SDK itself).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable
from functools import cache, lru_cache
from typing import Any, TypeGuard

from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

_TOKEN = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
HEADERS = ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256"})
CLAIM_TYPES: dict[str, type] = {
    "iss": str,
    "sub": str,
    "body": str,
    "exp": int,
    "nbf": int,
    "iat": int,
    "jti": str,
}
REQUIRED = frozenset(CLAIM_TYPES) - {"iat"}
ISSUER = "Upstash"


def verified_claims(
    keys: tuple[str, ...], token: str, text: str, url: str, now: float | None = None
) -> dict[str, Any] | None:
    """The claims of `token` when it has QStash's shape and verifies over `text` and
    `url` with one of `keys`; None when the SDK has to decide (it may still accept)."""
    found = _TOKEN.fullmatch(token)
    if found is None:
        return None
    if not _minted_header(found[1]):
        return None
    try:
        claims: object = json.loads(_canonical(found[2]).decode())
        signature = _canonical(found[3])
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError included
        return None
    if not _has_minted_claims(claims):
        return None
    signed = token[: found.end(2)].encode()
    if made_with([key for key in keys if _usable(key)], signed, signature) is None:
        return None
    now = time.time() if now is None else now
    in_time = claims["nbf"] <= now and claims.get("iat", 0) <= now and claims["exp"] > now
    if not in_time or claims["iss"] != ISSUER or claims["sub"] != url:
        return None
    if claims["body"].rstrip("=") != _body_hash(text):
        return None
    return claims


def made_with(keys: Iterable[str], signed: bytes, signature: bytes) -> str | None:
    """The key among `keys` whose HMAC-SHA256 of `signed` is `signature`, or None."""
    for key in keys:
        if hmac.compare_digest(hmac.new(key.encode(), signed, hashlib.sha256).digest(), signature):
            return key
    return None


def _canonical(segment: str) -> bytes:
    """A base64url segment's bytes; ValueError unless it is the one encoding of them
    (PyJWT refuses the others: changed trailing bits would decode to the same bytes)."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as error:
        raise ValueError("not base64url") from error
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode():
        raise ValueError("not canonical base64url")
    return decoded


@lru_cache(maxsize=16)
def _minted_header(segment: str) -> bool:
    """Whether a header segment is QStash's (the same for every token it mints, so
    remembered)."""
    try:
        return json.loads(_canonical(segment).decode()) in HEADERS
    except (ValueError, RecursionError):
        return False


def _has_minted_claims(claims: object) -> TypeGuard[dict[str, Any]]:
    """Whether `claims` are QStash's: only its claims, each of its type (a bool is not
    an int), the required ones present."""
    if not isinstance(claims, dict) or not claims.keys() >= REQUIRED:
        return False
    return all(type(value) is CLAIM_TYPES.get(name) for name, value in claims.items())


def _body_hash(text: str) -> str:
    """The `body` claim QStash signs: base64url(sha256(text)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")


@cache
def _usable(key: str) -> bool:
    """Whether PyJWT takes `key` as an HS256 key without a word: it refuses empty keys
    and keys that look like PEM, SSH or DER public keys, and warns about keys shorter
    than the hash (a warning that a strict warnings filter turns into a refusal)."""
    try:
        prepared = HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)
    except (InvalidKeyError, UnicodeError):
        return False
    return len(prepared) >= hashlib.sha256().digest_size
