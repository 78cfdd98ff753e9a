"""The IMAP connections a thread's jobs opened, kept for its next job of the same account.

Logging in costs the client a TLS handshake and the server a login; a bulk run would pay
both for every message. Each thread keeps the providers its jobs got (a job runs on one
thread, and a thread runs one job at a time, so no connection is shared by two jobs at
once), up to KEPT_PER_THREAD accounts, each for KEEP_SECONDS after its last use. A kept
connection is checked with a NOOP before it is handed out again: one the server closed
meanwhile is dropped, and the job's first command opens a new one. A changed password
or server is another key, so another connection.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from tasks.mail.imap import ImapProvider
from tasks.mail.imap_session import ServerSettings

KEEP_SECONDS = 60.0  # well inside the 30 minutes a server may keep an idle login (RFC 9051)
KEPT_PER_THREAD = 4

Key = tuple[str, ServerSettings, ServerSettings | None]


class _Kept(threading.local):
    def __init__(self) -> None:
        self.providers: OrderedDict[Key, tuple[ImapProvider, float]] = OrderedDict()


_kept = _Kept()


def kept_provider(key: Key, make: Callable[[], ImapProvider]) -> ImapProvider:
    """This thread's provider for the key, its connection checked; else a new one."""
    providers = _kept.providers
    now = time.monotonic()
    for stale in [k for k, (_, used) in providers.items() if now - used > KEEP_SECONDS]:
        providers.pop(stale)[0].close()
    found = providers.pop(key, None)
    provider = found[0] if found is not None else make()
    if found is not None:
        provider.keep_alive()
    providers[key] = (provider, now)
    while len(providers) > KEPT_PER_THREAD:
        providers.popitem(last=False)[1][0].close()
    return provider


def close_kept() -> None:
    """Log out of every connection this thread keeps (tests; a thread that ends)."""
    providers = _kept.providers
    while providers:
        providers.popitem()[1][0].close()
