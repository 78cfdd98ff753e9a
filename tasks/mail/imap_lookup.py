"""Where a message is on an IMAP account, by its Message-ID, without a SEARCH: an index per
folder from Message-ID to UID, kept in this process between jobs.

A folder's index is valid under one UIDVALIDITY and knows the UIDs below its UIDNEXT;
brought up to date, it fetches the Message-ID of the messages that arrived since (one
STATUS when none did), so each message is fetched once per process. UIDs are never
reused under one UIDVALIDITY: a UID the index names is that message as long as it
exists, which the caller checks (and `forget`s it when it does not: expunged, moved).
A SEARCH HEADER, by contrast, makes the server read a header of every message of the
folder for every lookup (Dovecot keeps no index of Message-IDs).

Least recently used folders are dropped first past _MAX_IDS messages in all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from imapclient import IMAPClient

from tasks.mail.maildir_headers import header_fields, unfold

_MAX_IDS = 1_000_000
_CHUNK = 1_000  # UIDs a fetch names at most: its command line stays under 8 KB (RFC 7162)
_FIELD = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
_FIELD_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


class _FolderIds:
    """One folder's Message-IDs, by the UIDs below `uidnext` under `uidvalidity`."""

    def __init__(self, uidvalidity: int) -> None:
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.uids: dict[str, list[int]] = {}
        self.size = 0


_folders: OrderedDict[tuple[object, ...], _FolderIds] = OrderedDict()
_lock = threading.Lock()  # Celery thread pools share this module


def candidates(account: tuple[object, ...], folder: str, message_id: str) -> list[tuple[int, int]]:
    """(UIDVALIDITY, UID) of the messages of that id the folder's index knows; asks nothing."""
    with _lock:
        state = _folders.get((*account, folder))
        if state is None:
            return []
        _folders.move_to_end((*account, folder))
        return [(state.uidvalidity, uid) for uid in state.uids.get(message_id, ())]


def forget(account: tuple[object, ...], folder: str, message_id: str, uid: int) -> None:
    """The UID no longer holds the message (expunged, moved away)."""
    with _lock:
        state = _folders.get((*account, folder))
        uids = state.uids.get(message_id) if state is not None else None
        if state is not None and uids is not None and uid in uids:
            uids.remove(uid)
            state.size -= 1
            if not uids:
                del state.uids[message_id]


def holds(client: IMAPClient, uid: int, message_id: str) -> bool:
    """Whether the selected folder's message of that UID exists and has that id."""
    fetched = client.fetch([uid], [_FIELD]).get(uid, {})
    return _own_id(fetched.get(_FIELD_KEY)) == message_id


def _own_id(block: object) -> str:
    if not isinstance(block, bytes):
        return ""
    return unfold(header_fields(block).get("message-id", ""))


def refresh(
    client: IMAPClient,
    account: tuple[object, ...],
    folder: str,
    select: Callable[[], object],
    *,
    selected: bool,
) -> None:
    """Bring the folder's index up to date: the Message-IDs of what arrived since.
    `selected`: the connection has the folder selected, and Dovecot answers STATUS on it
    from the session's view, which a NOOP brings up to date (as in `imap_index`)."""
    if selected:
        client.noop()
    status = client.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT"])
    validity, uidnext = int(status[b"UIDVALIDITY"]), int(status[b"UIDNEXT"])
    key = (*account, folder)
    with _lock:
        state = _folders.get(key)
        if state is None or state.uidvalidity != validity:
            state = _folders[key] = _FolderIds(validity)
        _folders.move_to_end(key)
        start = state.uidnext
    if uidnext <= start:
        return
    select()
    # The UIDs that arrived (a range search is answered from the server's index), then
    # their Message-IDs, a chunk a fetch.
    uids = [uid for uid in client.search(["UID", f"{start}:{uidnext - 1}"]) if uid >= start]
    arrived: list[tuple[str, int]] = []
    for low in range(0, len(uids), _CHUNK):
        for uid, data in client.fetch(uids[low : low + _CHUNK], [_FIELD]).items():
            own = _own_id(data.get(_FIELD_KEY))
            if own:
                arrived.append((own, int(uid)))
    with _lock:
        if _folders.get(key) is not state or state.uidnext != start:
            return  # another thread brought it up to date meanwhile
        for own, uid in arrived:
            state.uids.setdefault(own, []).append(uid)
        state.size += len(arrived)
        state.uidnext = uidnext
        _evict(keep=key)


def _evict(keep: tuple[object, ...]) -> None:
    total = sum(state.size for state in _folders.values())
    for key in list(_folders):
        if total <= _MAX_IDS:
            break
        if key != keep:
            total -= _folders.pop(key).size
