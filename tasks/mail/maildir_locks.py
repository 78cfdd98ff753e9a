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

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO


@contextmanager
def changing(path: str) -> Iterator[BinaryIO]:
    """The message file at `path`, open for reading and locked until the block ends.
    FileNotFoundError when no file has that name (now, or once the lock is ours)."""
    while True:
        handle = open(path, "rb")  # noqa: SIM115  # closed below, after the block
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            held = os.fstat(handle.fileno())
            named = os.stat(path)
            if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                yield handle
                return
        finally:
            handle.close()  # and with it the lock
        # The name holds another file now (rewritten while this waited): lock that one.
