"""The Maildir adapter's page tokens: a thread's place in a listing, (-timestamp in
microseconds, thread id), as opaque URL-safe text, and back.

A token that does not decode to such a place raises the port's InvalidPageToken.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from tasks.mail.port import InvalidPageToken

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - _EPOCH) // _MICROSECOND  # exact, unlike float timestamps


def encode_cursor(key: tuple[int, str]) -> str:
    """The token of a (-timestamp, thread id) sort key."""
    negated_stamp, thread = key
    return base64.urlsafe_b64encode(json.dumps([-negated_stamp, thread]).encode()).decode()


def decode_cursor(token: str) -> tuple[int, str]:
    """The (-timestamp, thread id) sort key a token stands for."""
    try:
        stamp, thread = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, UnicodeError, ValueError, TypeError, RecursionError) as error:
        raise InvalidPageToken(f"invalid page token {token[:40]!r}") from error
    if not isinstance(stamp, int) or not isinstance(thread, str):
        raise InvalidPageToken(f"invalid page token {token[:40]!r}")
    return -stamp, thread
