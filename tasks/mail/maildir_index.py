"""The Maildir adapter's folders as listings walk them: a folder's messages as scanned
(`thread_pages.ListedFolder`), kept in this process and scanned again only when its cur/
or new/ directory changed. Every change a Maildir sees changes one of them: a delivery
adds a file, a flag renames one, a label rewrites one, a move takes one away.

A directory's mtime is trusted only once it is _SETTLED old at the scan: a change made
within the same tick of the file system's clock as the last one would leave the mtime
as it was (Dovecot's Maildir code waits the same way). Until then every listing scans.
Kept per process, least recently used dropped first past _MAX_MESSAGES messages.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.mail.thread_pages import Listed, ListedFolder

_SETTLED_NS = 2_000_000_000
_MAX_MESSAGES = 500_000


@dataclass(frozen=True)
class _Scan:
    signature: tuple[int, ...]  # the directories' mtimes before the scan
    folder: ListedFolder


_scans: OrderedDict[tuple[str, ...], _Scan] = OrderedDict()
_lock = threading.Lock()  # Celery thread pools share this module


def listed_folder(
    directories: Sequence[Path], scan: Callable[[], Iterable[Listed]]
) -> ListedFolder:
    """The folder as `scan` lists it, or as it listed it last when nothing changed since."""
    key = tuple(str(directory) for directory in directories)
    signature = tuple(_mtime(directory) for directory in directories)
    settled = time.time_ns() - max(signature) >= _SETTLED_NS
    with _lock:
        kept = _scans.get(key)
        if kept is not None and settled and kept.signature == signature:
            _scans.move_to_end(key)
            return kept.folder
    folder = ListedFolder(scan())
    with _lock:
        if settled:
            _scans[key] = _Scan(signature, folder)
            _scans.move_to_end(key)
        else:
            _scans.pop(key, None)
        total = sum(scan.folder.size for scan in _scans.values())
        for old in list(_scans):
            if total <= _MAX_MESSAGES or old == key:
                break
            total -= _scans.pop(old).folder.size
    return folder


def _mtime(directory: Path) -> int:
    try:
        return os.stat(directory).st_mtime_ns
    except FileNotFoundError:
        return 0
