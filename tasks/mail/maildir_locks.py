"""One change at a time to a Maildir message, across jobbridge's processes.

A label rewrites the message's file (read, edit, rename a new file over the name); a
flag or a move renames it. Two of these at once on one message, from two jobs or two
processes, would otherwise lose one: a label written over another label, or a rewrite
renamed back to the name a move had just left (the message then in two folders). Each
change holds an exclusive `flock` on the message's file while it reads and renames it.

The lock belongs to the file (its inode), not its name: a change that waited may find
the name now holds another file (a rewrite replaced it), and then locks that one; or no
file (a flag or a move renamed it), and then its caller looks the message up again.
Other tools (an IMAP server flagging the same Maildir) do not take these locks.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, Literal

# How many times the name may hold a new file once the lock is had (each time another
# change rewrote the message) before the change gives up with an error to retry.
MOST_ROUNDS = 100


@contextmanager
def changing(path: str) -> Iterator[BinaryIO]:
    """The message file at `path`, open for reading and locked until the block ends.
    FileNotFoundError when no file has that name (now, or once the lock is ours)."""
    for _ in range(MOST_ROUNDS):
        handle = _locked(path)
        try:
            held = os.fstat(handle.fileno())
            named = os.stat(path)
            if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                yield handle
                return
        finally:
            handle.close()  # and with it the lock
        # The name holds another file now (rewritten while this waited): lock that one.
    raise OSError(f"{path}: rewritten {MOST_ROUNDS} times while waiting for its lock")


def _locked(path: str) -> BinaryIO:
    """The file, open and locked. On NFS an exclusive lock needs the file open for
    writing (EBADF otherwise), so it is opened that way there."""
    try:
        return _open_locked(path, "rb")
    except OSError as error:
        if error.errno != errno.EBADF:
            raise
    return _open_locked(path, "r+b")


def _open_locked(path: str, mode: Literal["rb", "r+b"]) -> BinaryIO:
    handle: BinaryIO = open(path, mode)  # noqa: SIM115  # closed by the caller
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    except BaseException:
        handle.close()
        raise
    return handle
