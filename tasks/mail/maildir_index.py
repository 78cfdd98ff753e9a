"""The Maildir adapter's index of an account's Maildir, kept per process between jobs:
which file holds each message (by its key), the folders, and the listings of the folders
listed so far (`maildir_listing`). It is brought up to date by listing again only the
directories whose mtime changed: a folder's cur/ and new/, and the root for the folders.

A lookup by key names the file the index knows and lists nothing. A message another
process renamed since (new -> cur, a flag) or moved to another folder is no longer
there: the caller, finding the file gone, asks again with `fresh=True`, which lists the
changed directories first. A key the index does not know (delivered since) lists the
changed directories too, and only them. This process's own renames and moves are
recorded as they are made (`changed`); a rewrite changes nothing the index keeps. A
listing asked for with a `max_age` is taken as it is when it was brought up to date
that recently: a page after the first of a listing (see `MaildirProvider.list_threads`).

A directory's mtime is trusted only once it is _SETTLED old at the scan: a change made
within the same tick of the file system's clock as the last one would leave the mtime
as it was (Dovecot's Maildir code waits the same way); until then every refresh lists
it again. A folder's new/ is listed before its cur/: a message only ever goes from new/
to cur/, so one renamed meanwhile is seen in one or the other. A file is known by its
name (a listing gives no more without a stat per file): a rename or a move is a new name;
a rewrite (a label) keeps it, so labels are read from the files where they count (see
`maildir_listing`). Least recently used accounts are dropped first past _MAX_FILES files.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.mail import maildir_shared_summaries as shared
from tasks.mail.maildir_files import (
    INBOX,
    File,
    adopt_summaries,
    cached_summaries,
    file_summary,
    folder_name_problem,
    folder_path,
    headers_read,
    name_parts,
)
from tasks.mail.maildir_listing import Entry, FolderListing

_SETTLED_NS = 2_000_000_000
_MAX_FILES = 500_000
SUBDIRS = ("new", "cur")


@dataclass
class _Scan:
    """A directory as last listed: its mtime then (0: missing), and its files' names."""

    mtime: int = -1
    trusted: bool = False
    names: frozenset[str] = frozenset()


class AccountIndex:
    """One Maildir's index; every method takes `lock` (Celery thread pools share it)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.lock = threading.RLock()
        self._root_scan = _Scan()  # its names: the folders other than INBOX
        self._scans: dict[tuple[str, str], _Scan] = {}
        self._where: dict[str, dict[tuple[str, str], str]] = {}  # key -> (folder, sub) -> name
        self._listings: dict[str, FolderListing] = {}
        self._listed_at: dict[str, float] = {}  # folder -> when its listing was refreshed

    @property
    def size(self) -> int:
        return len(self._where)

    def folders(self) -> list[str]:
        """INBOX, then the Maildir++ folders (`.Name` directories) by name."""
        with self.lock:
            mtime = _mtime(self.root)
            scan = self._root_scan
            if not (scan.trusted and scan.mtime == mtime):
                names = frozenset(_folder_names(self.root))
                self._root_scan = _Scan(mtime, _settled(mtime), names)
            return [INBOX, *sorted(self._root_scan.names)]

    def find(
        self, key: str, *, fresh: bool = False, folders: Sequence[str] | None = None
    ) -> File | None:
        """The message's file as the index knows it, listing nothing; with `fresh`, or
        when the index does not know the key, after a refresh of the folders (all of
        them unless named)."""
        with self.lock:
            if not fresh:
                found = self._file(key, folders)
                if found is not None:
                    return found
            self.refresh(self.folders() if folders is None else folders)
            return self._file(key, folders)

    def listing(self, folder: str, *, max_age: float = 0.0) -> FolderListing:
        """The folder's listing, up to date, or brought up to date at most `max_age`
        seconds ago. Read it holding `lock`: it changes in place."""
        with self.lock:
            read_before = headers_read()
            listing = self._listings.get(folder)
            if listing is None:
                listing = self._first_listing(folder)
            elif time.monotonic() - self._listed_at.get(folder, -math.inf) <= max_age:
                return listing
            else:
                self.refresh([folder])
            self._listed_at[folder] = time.monotonic()
            if headers_read() - read_before >= shared.SHARE_AFTER_READING:
                held = {key: entry.summary for key, entry in listing.entries.items()}
                shared.save(self.root, folder, cached_summaries(held))
            return listing

    def _first_listing(self, folder: str) -> FolderListing:
        """The folder listed whole: from what another process read of it, what is known
        here already, then what changed. Kept only once whole (a listing that failed
        half-way is made again next time, not kept without the messages it missed)."""
        listing = self._listings[folder] = FolderListing()  # refresh puts into it
        try:
            adopt_summaries(shared.load(self.root, folder))
            with listing.adding_many():
                for sub in SUBDIRS:
                    for name in self._scans.get((folder, sub), _Scan()).names:
                        self._put(listing, self._file_at(folder, sub, name))
                self.refresh([folder])
        except BaseException:
            del self._listings[folder]
            raise
        return listing

    def refresh(self, folders: Sequence[str]) -> None:
        """List again each directory of the folders that changed since it was listed."""
        with self.lock:
            for folder in folders:
                for sub in SUBDIRS:
                    self._refresh_directory(folder, sub)

    def changed(self, before: File, after: File) -> None:
        """Record this process's own rename or move of a message, as made: where the
        index knows it, and the names its directories' next listings compare against
        (else a directory not listed yet, such as a folder the move made, would never
        forget a name that another process then moved away)."""
        with self.lock:
            old = (before.folder, _sub_of(before), os.path.basename(before.path))
            new = (after.folder, _sub_of(after), os.path.basename(after.path))
            self._forget(*old)
            self._learn(*new)
            self._scanned(*old, present=False)
            self._scanned(*new, present=True)

    def _scanned(self, folder: str, sub: str, name: str, *, present: bool) -> None:
        scan = self._scans.setdefault((folder, sub), _Scan())
        scan.names = scan.names | {name} if present else scan.names - {name}

    def _refresh_directory(self, folder: str, sub: str) -> None:
        path = os.path.join(folder_path(self.root, folder), sub)
        mtime = _mtime(path)
        scan = self._scans.get((folder, sub))
        if scan is not None and scan.trusted and scan.mtime == mtime:
            return
        names = _names(path)
        old = scan.names if scan is not None else frozenset()
        for name in old - names:
            self._forget(folder, sub, name)
        for name in names - old:
            self._learn(folder, sub, name)
        self._scans[(folder, sub)] = _Scan(mtime, _settled(mtime), names)

    def _forget(self, folder: str, sub: str, name: str) -> None:
        key, _ = name_parts(name)
        places = self._where.get(key)
        if places is None or places.get((folder, sub)) != name:
            return  # known elsewhere since (recorded by `changed`, or listed first)
        del places[(folder, sub)]
        if not places:
            del self._where[key]
        listing = self._listings.get(folder)
        if listing is not None:
            others = [(s, n) for (f, s), n in places.items() if f == folder]
            if others:
                self._put(listing, self._file_at(folder, *others[0]))
            else:
                listing.remove(key)

    def _learn(self, folder: str, sub: str, name: str) -> None:
        key, _ = name_parts(name)
        self._where.setdefault(key, {})[(folder, sub)] = name
        listing = self._listings.get(folder)
        if listing is not None:
            self._put(listing, self._file_at(folder, sub, name))

    def _put(self, listing: FolderListing, file: File) -> None:
        summary = file_summary(file)
        if summary is not None:  # else gone since: its directory is listed again next time
            listing.put(Entry(file, summary))

    def _file(self, key: str, folders: Sequence[str] | None) -> File | None:
        for (folder, sub), name in self._where.get(key, {}).items():
            if folders is None or folder in folders:
                return self._file_at(folder, sub, name)
        return None

    def _file_at(self, folder: str, sub: str, name: str) -> File:
        key, flags = name_parts(name)
        path = os.path.join(folder_path(self.root, folder), sub, name)
        return File(folder, key, path, flags)


def _sub_of(file: File) -> str:
    return os.path.basename(os.path.dirname(file.path))


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def _settled(mtime: int) -> bool:
    return time.time_ns() - mtime >= _SETTLED_NS


def _names(directory: str) -> frozenset[str]:
    """The message files of a directory; none if it is missing (reading never creates a
    folder). Dot files are not messages (editor and sync droppings)."""
    try:
        names = frozenset(os.listdir(directory))
    except FileNotFoundError:
        return frozenset()
    dots = [name for name in names if name[:1] == "."]
    return names.difference(dots) if dots else names


def _folder_names(root: str) -> list[str]:
    """The root's folders (`.Name` directories), but for names no folder may have (`...`
    is a directory some tool made, not a folder `..`: it would fail every listing)."""
    try:
        with os.scandir(root) as entries:
            names = [e.name[1:] for e in entries if e.name[:1] == "." and e.is_dir()]
    except FileNotFoundError:
        return []
    return [name for name in names if folder_name_problem(name) is None]


# The indexes of this process, one per Maildir root ------------------------------------
_indexes: OrderedDict[str, AccountIndex] = OrderedDict()
_indexes_lock = threading.Lock()


def index_for(root: str) -> AccountIndex:
    """The index of the Maildir at `root` (made on first use)."""
    key = os.path.abspath(root)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = AccountIndex(key)
        _indexes.move_to_end(key)
        total = sum(kept.size for kept in _indexes.values())
        for old in list(_indexes):
            if total <= _MAX_FILES or old == key:
                break
            total -= _indexes.pop(old).size
        return index
