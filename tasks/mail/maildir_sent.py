"""How the Maildir adapter stores a send that carries an idempotency key: under a key
derived from it, written so that any number of concurrent sends of one key leave
exactly one message.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from email.generator import BytesGenerator
from email.message import EmailMessage
from pathlib import Path


def sent_key(idempotency_key: str) -> str:
    """The Maildir key a send with this idempotency key is stored under: a digest, so any
    key gives a valid file name (no "/" or ":") of a bounded length."""
    return "sent-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def add_once(folder: Path, key: str, message: EmailMessage) -> str:
    """Store the message in the Maildir folder at `folder` as `key` (read) unless a
    message of that name is there already.

    The check and the write are one link(2) of a finished file to the name the key
    fixes, which fails if the name exists: of any number of concurrent sends of one
    key, in threads, processes or hosts sharing the Maildir, exactly one lands.
    """
    partial = folder / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex}"
    buffer = io.BytesIO()
    # What mailbox.Maildir.add writes: no From_ mangling, headers not refolded.
    BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(message)
    try:
        with open(partial, "xb") as handle:
            handle.write(buffer.getvalue())
        os.link(partial, folder / "cur" / f"{key}:2,S")
    except FileExistsError:
        pass  # a concurrent send of the same key landed first: that copy is the one
    finally:
        partial.unlink(missing_ok=True)
    return key
