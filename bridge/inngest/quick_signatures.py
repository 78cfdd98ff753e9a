"""A call's X-Inngest-Signature checked in microseconds where that is certain.

Inngest signs a call's JSON in its canonical form (RFC 8785, as the SDK computes it with
the `jcs` package: keys sorted, no spaces, numbers as ECMAScript writes them), and the
SDK's check builds that form in pure Python, a microsecond or two a JSON value: a
made-up signature on a 4 KiB body of small values buys milliseconds of the event loop.
For most bodies Python's C `json` module writes the same bytes: UTF-8 JSON with no
floats (ECMAScript's number form differs from Python's), no integer of 16 digits or
more (beyond 2**53 ECMAScript rounds), and no character outside the Basic Multilingual
Plane or lone surrogate (which sort, or encode, differently). For those the check here
is exact; for any other it says it cannot tell, and the SDK's own check decides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs

from inngest._internal.transforms import remove_signing_key_prefix

# What the C json module may write otherwise than the `jcs` package: a character beyond
# U+FFFF (a 4-byte UTF-8 sequence, or a surrogate's escape), and an integer of 16 digits
# or more (beyond 2**53 ECMAScript rounds; a run of digits in a string counts too,
# harmlessly). Looked for with bytes methods and simple patterns: a regular expression
# with alternatives costs more than the JSON parse.
_WIDE_CHARACTER = re.compile(rb"[\xf0-\xf4]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 16
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

# True: the signature verifies with one of the keys; False: it certainly does not (the
# SDK would refuse it too); None: cannot tell here.
QuickCheck = Callable[[bytes, str], bool | None]


class _Unsure(Exception):
    """A JSON value whose canonical form the C json module may not write as jcs does."""


def _unsure(_text: str) -> object:
    raise _Unsure


def canonical_form(body: bytes) -> bytes | None:
    """The SDK's canonical form of `body` (`transforms.canonicalize`), written by the C
    json module; None where the two might differ, or the body is no JSON."""
    if not body:
        return body  # the SDK signs an empty body as it is
    if (
        json.detect_encoding(body) != "utf-8"
        or (not body.isascii() and _WIDE_CHARACTER.search(body))
        or _SURROGATE_ESCAPE.search(body)
        or _LONG_NUMBER in body.translate(_DIGITS_AS_ZERO)
    ):
        return None
    try:
        value = json.loads(body, parse_float=_unsure, parse_constant=_unsure)
        return _CANONICAL.encode(value).encode()
    except (_Unsure, ValueError, RecursionError):  # UnicodeError is a ValueError
        return None


def quick_check(keys: Sequence[str]) -> QuickCheck:
    """Checks against the signing keys (the current one, then the fallback), as the SDK
    checks: HMAC-SHA256 keyed with the key's text without its `signkey-...-` prefix, over
    the canonical body and then the header's timestamp as a decimal integer."""
    secrets = [remove_signing_key_prefix(key).encode() for key in keys]

    def verifies(body: bytes, header: str) -> bool | None:
        try:
            fields = parse_qs(header, strict_parsing=True)
            timestamp, (signature,) = int(fields["t"][0]), fields["s"]
        except (KeyError, ValueError, IndexError):
            return None  # a header the gate refuses before this is ever asked
        canonical = canonical_form(body)
        if canonical is None:
            return None
        signed = canonical + (str(timestamp).encode() if timestamp else b"")
        return any(
            hmac.compare_digest(hmac.new(secret, signed, hashlib.sha256).hexdigest(), signature)
            for secret in secrets
        )

    return verifies
