"""Logged-in IMAP connections a process keeps between jobs, by login.

Logging in costs a TLS handshake and a server-side login; a bulk run would pay both for
every message. An `ImapProvider` takes a connection from here when it first needs one
and gives it back when it is garbage collected (the end of its job): each job still
gets a provider of its own, with nothing selected and nothing cached, on a connection
no other job is using. A connection is checked with a NOOP before it serves again (one
the server closed, or one a job left in the middle of a command, is dropped and a new
login made); one unused for KEEP_SECONDS is closed; at most IDLE_PER_LOGIN wait per
login. So a process holds as many connections to a mailbox as it ran jobs on it at once,
plus none once it has been quiet for a minute and is next used.
"""

from __future__ import annotations

import contextlib
import imaplib
import threading
import time
from collections import deque

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from tasks.mail.imap_session import ServerSettings

KEEP_SECONDS = 60.0  # well inside the 30 minutes a server keeps an idle login (RFC 9051)
IDLE_PER_LOGIN = 4

# Given back by finalizers, which run in whatever thread collects the provider, at any
# moment (inside `take` too): a deque's append needs no lock.
_returned: deque[tuple[ServerSettings, IMAPClient, float]] = deque()
_idle: dict[ServerSettings, list[tuple[IMAPClient, float]]] = {}
_lock = threading.Lock()


def give_back(login: ServerSettings, client: IMAPClient) -> None:
    """A provider's connection, back when the provider is collected."""
    _returned.append((login, client, time.monotonic()))


def take(login: ServerSettings) -> IMAPClient | None:
    """A kept connection for the login that answers a NOOP, or None (log in anew)."""
    while True:
        with _lock:
            stale = _settle(time.monotonic())
            waiting = _idle.get(login)
            client = waiting.pop()[0] if waiting else None
        for old in stale:
            drop(old)
        if client is None:
            return None
        try:
            client.noop()
        except (IMAPClientError, OSError):  # closed by the server, or left mid-command
            drop(client)
            continue
        return client


def _settle(now: float) -> list[IMAPClient]:
    """Move what finalizers gave back into the idle lists; the connections to close (idle
    too long, or beyond IDLE_PER_LOGIN). Under the lock."""
    while _returned:
        login, client, since = _returned.popleft()
        _idle.setdefault(login, []).append((client, since))
    stale: list[IMAPClient] = []
    for login in list(_idle):
        fresh = [(c, since) for c, since in _idle[login] if now - since <= KEEP_SECONDS]
        stale += [c for c, since in _idle[login] if now - since > KEEP_SECONDS]
        stale += [c for c, _ in fresh[:-IDLE_PER_LOGIN]]
        if fresh[-IDLE_PER_LOGIN:]:
            _idle[login] = fresh[-IDLE_PER_LOGIN:]
        else:
            del _idle[login]
    return stale


def drop(client: IMAPClient) -> None:
    """Close a connection without a LOGOUT round trip (it may be dead, or half-open
    behind a NAT that forgot it: a LOGOUT would wait for the timeout)."""
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        client.shutdown()


def close_all() -> None:
    """Close every kept connection (tests, and a process that stops using IMAP)."""
    with _lock:
        kept = _settle(time.monotonic())
        kept += [client for waiting in _idle.values() for client, _ in waiting]
        _idle.clear()
    for client in kept:
        drop(client)
