"""Access tokens outlive a job. A provider is made per job, but what holds its account's
access token is kept per process: a bulk run refreshes once an hour per worker, not once
per message (which the token endpoints would throttle).

A holder is replaced when the stored refresh token is one it has not seen: the account
was connected again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar


class TokenHolder(Protocol):
    def knows(self, refresh_token: str) -> bool:
        """Whether this holder was made from, or has rotated to, this refresh token."""
        ...


Holder = TypeVar("Holder", bound=TokenHolder)

MAX_HOLDERS = 10_000  # accounts one process serves; past it the cache starts again
_holders: dict[Hashable, TokenHolder] = {}
_lock = threading.Lock()


def shared_holder(key: Hashable, refresh_token: str, make: Callable[[], Holder]) -> Holder:
    with _lock:
        found = _holders.get(key)
        if found is None or not found.knows(refresh_token):
            if len(_holders) >= MAX_HOLDERS:
                _holders.clear()
            found = _holders[key] = make()
        return found  # type: ignore[return-value]  # each key is made by one `make`
