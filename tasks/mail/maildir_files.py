"""A Maildir message file as the Maildir adapter sees it: where it is, what its name says
(its key, its flags) and the summary of its headers, cached.

A file's name is `<key>` or `<key>:2,<flags>`; the key is the message's id in the port
and never changes, the flags do (a rename). The summary cache is keyed by the key and
what fstat says of the open file (inode, mtime, size): a rename or a move keeps all
three, so a message renamed or moved is not parsed again; a rewrite (a label) makes a
new file, of another inode and size, which is.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import BinaryIO

from bridge.outcome import PermanentError
from tasks.mail.maildir_headers import Summary, raw_headers, summarise

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
_cache: OrderedDict[tuple[str, int, int, int], Summary] = OrderedDict()
_cache_lock = threading.Lock()  # Celery thread pools share this module


def file_summary(file: File) -> Summary | None:
    """The message's summary, or None when the file has gone since it was listed."""
    try:
        with open(file.path, "rb") as handle:
            # fstat of the open file: the key describes exactly the content read below.
            stat = os.fstat(handle.fileno())
            key = (file.key, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            with _cache_lock:
                cached = _cache.get(key)
                if cached is not None:
                    _cache.move_to_end(key)
                    return cached
            raw = parse_headers(handle)
    except FileNotFoundError:
        return None
    summary = summarise(raw, file.key, stat.st_mtime)
    with _cache_lock:
        _cache[key] = summary
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return summary


def parse_headers(handle: BinaryIO) -> dict[str, str]:
    """The header block only: a message's attachments are never read to list it."""
    lines: list[bytes] = []
    for line in handle:
        if line in (b"\n", b"\r\n"):
            break
        lines.append(line)
    return raw_headers(BytesHeaderParser().parsebytes(b"".join(lines)).raw_items())
