"""Which IMAP folder plays which part: the port's names (INBOX, Archive, Sent) and the
server's, found by their special-use flags (RFC 6154) and created when missing.

Trash and Junk are never searched for a message: one the user deleted or marked as spam
no longer exists for the jobs, so acting on it cannot take it back out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from bridge.outcome import PermanentError

INBOX = "INBOX"
ARCHIVE = "Archive"
SENT = "Sent"

_ARCHIVE_FLAG = b"\\Archive"
_SENT_FLAG = b"\\Sent"
_HIDDEN_FLAGS = {b"\\Trash", b"\\Junk", b"\\Noselect", b"\\NonExistent"}
# RFC 5530 response codes that say "not now" rather than "not ever".
_TRANSIENT_CODES = ("[UNAVAILABLE]", "[SERVERBUG]", "[INUSE]")
_TIMING = re.compile(r"\s*\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.?$")  # Dovecot's


@dataclass(frozen=True)
class Folders:
    """The server's folder names: the special ones, and every other selectable one."""

    archive: str | None  # None: no \\Archive folder and none named Archive yet
    sent: str | None
    searchable: tuple[str, ...]  # INBOX first, then Archive and Sent, then the rest

    def server_name(self, port_name: str) -> str:
        """The server's folder for a port name: Archive and Sent by their special use."""
        if port_name == ARCHIVE:
            return self.archive or ARCHIVE
        if port_name == SENT:
            return self.sent or SENT
        return port_name

    def port_name(self, server_name: str) -> str:
        """The port's name for a server folder (the inverse of server_name)."""
        if server_name.upper() == INBOX:
            return INBOX
        if server_name == self.archive:
            return ARCHIVE
        if server_name == self.sent:
            return SENT
        return server_name


def read_folders(client: IMAPClient) -> Folders:
    listed = client.list_folders()
    by_flag: dict[bytes, str] = {}
    selectable: list[str] = []
    for flags, _, name in listed:
        for flag in flags:
            by_flag.setdefault(flag, name)
        if not _HIDDEN_FLAGS & set(flags):
            selectable.append(name)
    names = set(selectable)
    archive = by_flag.get(_ARCHIVE_FLAG) or (ARCHIVE if ARCHIVE in names else None)
    sent = by_flag.get(_SENT_FLAG) or (SENT if SENT in names else None)
    return Folders(archive, sent, _search_order(selectable, archive, sent))


def _search_order(
    selectable: Iterable[str], archive: str | None, sent: str | None
) -> tuple[str, ...]:
    first = [name for name in (INBOX, archive, sent) if name]
    rest = [name for name in selectable if name not in first and name.upper() != INBOX]
    return (*first, *rest)


def ensure_folder(client: IMAPClient, name: str) -> None:
    """Create the folder unless it exists. One the server refuses to make (a character its
    storage does not take, a name too long, a namespace the user may not write) is a
    PermanentError naming the folder and the server's answer: asking again gets the same
    answer. RFC 5530's UNAVAILABLE, SERVERBUG and INUSE are transient (ConnectionError)."""
    if client.folder_exists(name):
        return
    try:
        client.create_folder(name)
    except IMAPClientError as error:
        if client.folder_exists(name):  # made by a concurrent job
            return
        answer = _TIMING.sub("", str(error).removeprefix("create failed: "))
        detail = f"IMAP folder {name!r} cannot be created: the server answered {answer!r}"
        if any(code in answer for code in _TRANSIENT_CODES):
            raise ConnectionError(detail) from None
        raise PermanentError(detail) from None
