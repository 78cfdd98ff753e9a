"""Header summaries shared by the processes of one machine, one file per Maildir folder
under DATA_DIR/maildir-summaries.

Listing a folder reads the header block of each of its messages once per process
(`maildir_files.file_summary`): a Celery worker's pool processes would each read a
large inbox whole, one after another, as each first runs a page of a bulk run (2-3 s
a process at 20,000 messages, while the others wait for that page). A process whose
listing read many headers writes the folder's summaries; one that lists the folder for
the first time starts from that file. Each summary is used only for a file of the same
key, inode, mtime and size (`maildir_files`' cache key, looked up with the stat listing
makes anyway): a summary of a file changed since is never used, only read again.

It is a cache: a file that is missing, unreadable, of another format or corrupt is
read as empty, and a failed write is skipped (logged at DEBUG). The files hold each
message's key, inode, mtime, size, thread id, Message-ID, References, Date and labels;
they are written 0600.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from config import get_settings
from tasks.mail.maildir_headers import SUMMARY_VERSION, Summary

log = logging.getLogger("jobbridge.maildir")

FORMAT = 1  # of the file; its summaries are also of SUMMARY_VERSION
# A process shares its summaries after a listing that read at least this many headers.
SHARE_AFTER_READING = 500

PARTIAL_PREFIX = ".partial-"
ABANDONED_AFTER_SECONDS = 3600

CacheKey = tuple[str, int, int, int]  # key, inode, mtime (ns), size

_loaded: set[tuple[str, str]] = set()  # (Maildir root, folder) loaded by this process


def shared_file(root: str, folder: str) -> Path:
    """Where the summaries of the folder of the Maildir at `root` are shared."""
    name = hashlib.sha256(f"{os.path.realpath(root)}\0{folder}".encode()).hexdigest()[:32]
    return get_settings().data_dir.resolve() / "maildir-summaries" / f"{name}.json"


def load(root: str, folder: str) -> list[tuple[CacheKey, Summary]]:
    """The summaries shared for the folder, or none: once per folder a process (later,
    what it read itself is in its cache already)."""
    place = (os.path.realpath(root), folder)
    if place in _loaded:
        return []
    _loaded.add(place)
    try:
        content = json.loads(shared_file(root, folder).read_bytes())
        if (content.get("format"), content.get("summary_version")) != (FORMAT, SUMMARY_VERSION):
            return []
        return [_entry(row) for row in content["summaries"]]
    except FileNotFoundError:
        return []
    except Exception as error:  # a cache: whatever is wrong with it, it is not used
        log.debug("shared Maildir summaries of %s unreadable: %s", root, error)
        return []


def save(root: str, folder: str, entries: Iterable[tuple[CacheKey, Summary]]) -> None:
    """Share these summaries of the folder, replacing what was shared (in one rename)."""
    path = shared_file(root, folder)
    content = {
        "format": FORMAT,
        "summary_version": SUMMARY_VERSION,
        "summaries": [_row(key, summary) for key, summary in entries],
    }
    try:
        path.parent.mkdir(exist_ok=True)  # not DATA_DIR: none is made for a cache
        _remove_abandoned(path.parent)
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX)
        try:
            with os.fdopen(handle, "w") as out:  # mkstemp makes it 0600
                json.dump(content, out, separators=(",", ":"))
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    except OSError as error:
        log.debug("could not share Maildir summaries of %s: %s", root, error)


def _remove_abandoned(directory: Path) -> None:
    """Partial files a process killed mid-write left, once they are an hour old."""
    for partial in directory.glob(PARTIAL_PREFIX + "*"):
        try:
            if time.time() - partial.stat().st_mtime > ABANDONED_AFTER_SECONDS:
                partial.unlink()
        except OSError:
            continue  # finished or removed by another process meanwhile, or not ours


def _row(key: CacheKey, summary: Summary) -> list[Any]:
    return [
        *key,
        summary.thread_id,
        summary.date.isoformat(),
        sorted(summary.labels),
        summary.message_id,
        list(summary.references),
    ]


def _entry(row: list[Any]) -> tuple[CacheKey, Summary]:
    key, inode, mtime, size, thread_id, date, labels, message_id, references = row
    moment = datetime.fromisoformat(date)
    if moment.tzinfo is None:
        raise ValueError(f"a date without its zone: {date!r}")
    if not (
        type(labels) is list
        and type(references) is list
        and type(key) is str
        and type(thread_id) is str
        and type(message_id) is str
        and type(inode) is int
        and type(mtime) is int
        and type(size) is int
        and all(type(text) is str for text in (*labels, *references))
    ):
        raise TypeError(f"a summary of other types: {row!r}")
    summary = Summary(thread_id, moment, frozenset(labels), message_id, tuple(references))
    return (key, inode, mtime, size), summary
