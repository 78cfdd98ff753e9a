"""Direct HTTP callers prove themselves with `x-api-key` equal to INTERNAL_API_KEY."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from pydantic import SecretStr

from bridge.http.wire import API_KEY_HEADER
from config import Settings


class Unauthorized(Exception):
    """The caller did not prove who it is: answered 401."""


def same_secret(given: str, expected: SecretStr | None) -> bool:
    if expected is None or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def verify_api_key(settings: Settings, headers: Mapping[str, str]) -> None:
    """INTERNAL_API_KEY holders only; else Unauthorized."""
    if not same_secret(headers.get(API_KEY_HEADER, ""), settings.internal_api_key):
        raise Unauthorized(f"missing or invalid {API_KEY_HEADER}")
