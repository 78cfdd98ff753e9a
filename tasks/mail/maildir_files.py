"""A Maildir message file as the Maildir adapter sees it: where it is, what its name says
(its key, its flags) and the summary of its headers, cached.

A file's name is `<key>` or `<key>:2,<flags>`; the key is the message's id in the port
and never changes, the flags do (a rename). The summary cache is keyed by the key and
the file's inode, mtime and size (a stat to look it up; on a miss, the fstat of the file
opened to read its headers, so the key describes exactly what was read): a rename or a
move keeps all three, so a message renamed or moved is not parsed again; a rewrite (a
label) makes a new file, of another inode and size, which is.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from bridge.outcome import PermanentError
from tasks.mail.maildir_headers import Summary, header_fields, summarise
from tasks.mail.maildir_shared_summaries import CacheKey

INBOX = "INBOX"


@dataclass(frozen=True)
class File:
    """One message file as last seen: its folder, its key, its path and its flags."""

    folder: str
    key: str
    path: str
    flags: str = ""

    @property
    def read(self) -> bool:
        return "S" in self.flags

    @property
    def info(self) -> str:
        """The name's info part, as a rename keeps it ("2," and the flags)."""
        return f"2,{self.flags}"


def name_parts(name: str) -> tuple[str, str]:
    """The key and the flags a message file's name gives."""
    key, _, info = name.partition(":")
    return key, info[2:] if info.startswith("2,") else ""


def folder_path(root: str, folder: str) -> str:
    """The directory of a folder: INBOX is the Maildir's root, others are `.Name`; a name
    that would lead out of the root is refused (PermanentError)."""
    if folder == INBOX:
        return root
    if problem := folder_name_problem(folder):
        raise PermanentError(f"folder {folder!r}: {problem}")
    return os.path.join(root, f".{folder}")


def folder_name_problem(folder: str) -> str | None:
    """Why `folder` cannot name a folder of a Maildir (Maildir++: a directory `.Name` in
    the account's root), or None: a `/` would lead out of the root (`../../x`), and a
    name of dots alone is no folder."""
    if not folder.strip(".") or "/" in folder or "\0" in folder:
        return "a Maildir folder's name has no '/' and is more than dots"
    return None


# Header summaries, cached ------------------------------------------------------------
_CACHE_SIZE = 50_000
_cache: OrderedDict[CacheKey, Summary] = OrderedDict()
_cache_lock = threading.Lock()  # Celery thread pools share this module


class _Reads(threading.local):
    headers = 0  # header blocks read by this thread since it started


_reads = _Reads()


def headers_read() -> int:
    """How many header blocks this thread has read (summaries not found cached): a
    listing, made under its index's lock in one thread, counts what it read."""
    return _reads.headers


def adopt_summaries(entries: Iterable[tuple[CacheKey, Summary]]) -> None:
    """Summaries read by another process (`maildir_shared_summaries`), cached as if read
    here: each is used only for a file of the same key, inode, mtime and size."""
    with _cache_lock:
        for key, summary in entries:
            _cache.setdefault(key, summary)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def cached_summaries(held: Mapping[str, Summary]) -> list[tuple[CacheKey, Summary]]:
    """The cache's entries of these summaries (key -> the summary held of it): of each
    message, the version held, not those of its files before a rewrite."""
    with _cache_lock:
        return [(key, summary) for key, summary in _cache.items() if held.get(key[0]) == summary]


def file_summary(file: File) -> Summary | None:
    """The message's summary, or None when the file has gone since it was listed."""
    try:
        # A stat for the cache, which most files are found in (no open, no read).
        cached = _cached(file.key, os.stat(file.path))
        if cached is not None:
            return cached
        with open(file.path, "rb") as handle:
            # fstat of the open file: the key describes exactly the content read below.
            stat = os.fstat(handle.fileno())
            if (cached := _cached(file.key, stat)) is not None:
                return cached
            raw = parse_headers(handle)
    except FileNotFoundError:
        return None
    summary = summarise(raw, file.key, stat.st_mtime)
    _reads.headers += 1
    with _cache_lock:
        _cache[_cache_key(file.key, stat)] = summary
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return summary


def _cache_key(key: str, stat: os.stat_result) -> CacheKey:
    return (key, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _cached(key: str, stat: os.stat_result) -> Summary | None:
    cache_key = _cache_key(key, stat)
    with _cache_lock:
        found = _cache.get(cache_key)
        if found is not None:
            _cache.move_to_end(cache_key)
        return found


def parse_headers(handle: BinaryIO) -> dict[str, str]:
    """The header block only: a message's attachments are never read to list it."""
    lines: list[bytes] = []
    for line in handle:
        if line in (b"\n", b"\r\n"):
            break
        lines.append(line)
    return header_fields(b"".join(lines))
