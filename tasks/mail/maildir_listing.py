"""One Maildir folder as listings walk it (`thread_pages.FolderView`): its messages newest
first, by thread and by Message-ID, changed one message at a time as the folder's
directories change (`maildir_index`), never rebuilt whole.

What never changes for a message (its date, thread, Message-ID and References) is kept.
Its read flag is the file's name as last listed. Its labels are a header that a rewrite
changes under the same name: a page reads those of the messages it filters on from the
files themselves (`labels`: `maildir_files.file_summary`, cached), so a filter never
acts on labels another process's rewrite made stale.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tasks.mail.maildir_cursor import micros
from tasks.mail.maildir_files import File, file_summary
from tasks.mail.maildir_headers import Summary


@dataclass(frozen=True)
class Entry:
    """A message of the folder: its file as last listed and its summary."""

    file: File
    summary: Summary

    @property
    def sort_key(self) -> tuple[int, str]:
        # Ascending is newest first; equal dates by key, as thread_pages orders them.
        return (-micros(self.summary.date), self.file.key)


class FolderListing:
    def __init__(self) -> None:
        self.order: list[tuple[int, str]] = []  # (-stamp, key), ascending
        self.entries: dict[str, Entry] = {}
        self.threads: dict[str, set[str]] = {}  # thread id -> keys
        self.by_message_id: dict[str, set[str]] = {}  # Message-ID header -> keys
        self._unsorted = False  # within `adding_many`: order is sorted at its end

    @contextmanager
    def adding_many(self) -> Iterator[None]:
        """Within the block, `put` appends to the order, sorted once at the block's end:
        a whole folder listed in O(n log n), where each insort would move the list."""
        self._unsorted = True
        try:
            yield
        finally:
            self._unsorted = False
            self.order.sort()

    def put(self, entry: Entry) -> None:
        """Add the message, or replace what was known of it."""
        key = entry.file.key
        self.remove(key)
        self.entries[key] = entry
        if self._unsorted:
            self.order.append(entry.sort_key)
        else:
            bisect.insort(self.order, entry.sort_key)
        self.threads.setdefault(entry.summary.thread_id, set()).add(key)
        if entry.summary.message_id:
            self.by_message_id.setdefault(entry.summary.message_id, set()).add(key)

    def remove(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is None:
            return
        if self._unsorted:
            self.order.sort()  # nearly sorted: a pass, and rare (a name gone mid-listing)
        place = bisect.bisect_left(self.order, entry.sort_key)
        del self.order[place]
        _discard(self.threads, entry.summary.thread_id, key)
        _discard(self.by_message_id, entry.summary.message_id, key)

    def labels(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """The labels of these messages as their files say now (as listed, for a file
        gone since)."""
        found: dict[str, frozenset[str]] = {}
        for key in keys:
            entry = self.entries[key]
            found[key] = (file_summary(entry.file) or entry.summary).labels
        return found

    # thread_pages.FolderView ---------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.order)

    def load(self, positions: Iterable[int], *, threads: bool = False) -> None:
        pass  # everything is in memory

    def stamp(self, position: int) -> int:
        return -self.order[position][0]

    def message_id(self, position: int) -> str:
        return self.order[position][1]

    def thread(self, position: int) -> str:
        return self.entries[self.order[position][1]].summary.thread_id

    def members(self, position: int) -> Sequence[int]:
        keys = self.threads[self.thread(position)]
        return sorted(bisect.bisect_left(self.order, self.entries[k].sort_key) for k in keys)

    def flags(self, positions: Sequence[int]) -> Mapping[int, tuple[bool, frozenset[str]]]:
        keys = {position: self.order[position][1] for position in positions}
        labels = self.labels(keys.values())
        return {p: (self.entries[key].file.read, labels[key]) for p, key in keys.items()}


def _discard(index: dict[str, set[str]], name: str, key: str) -> None:
    keys = index.get(name)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[name]
