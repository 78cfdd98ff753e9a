"""A real mail provider on disk (stdlib `mailbox`, Maildir++ folders), so effects can be watched.

Message ids are Maildir keys, stable across moves; threads are the root Message-ID
of the References chain. Inbox is the Maildir root; other folders are `.Name`.
Labels are the comma-separated X-Keywords header; the Seen flag is the read state.

Every lookup goes through the process's index of the Maildir (`maildir_index`): a
message is read, renamed or moved at the file the index names, and the directories are
listed again only when that file has gone (another process renamed or moved it) or the
key is new, and then only those that changed. A flag is a rename (new -> cur, `:2,S`),
a label a rewrite of the file under the same name, a move a rename into the folder;
each holds the file's lock (`maildir_locks`), so two of jobbridge's changes to a message
never interleave.

This module holds the provider. Reading headers is in `maildir_headers`, files and their
cached summaries in `maildir_files`, listings in `maildir_listing`, page tokens in
`maildir_cursor`, storing a send once in `maildir_sent`, a change's lock in
`maildir_locks`, and a body's text in `body_text`.
"""

from __future__ import annotations

import io
import mailbox
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

from bridge.outcome import PermanentError
from tasks.mail.composing import message_id_for, outgoing_message
from tasks.mail.maildir_files import INBOX, File, folder_path, parse_headers
from tasks.mail.maildir_headers import (
    LABELS_HEADER,
    as_utc,
    header_text,
    label_problem,
    raw_headers,
    split_labels,
    summarise,
    with_field,
)
from tasks.mail.maildir_index import index_for
from tasks.mail.maildir_locks import changing
from tasks.mail.maildir_sent import add_once, sent_key
from tasks.mail.one_by_one import change_one_by_one
from tasks.mail.port import MailMessage, MessageNotFound, OutgoingMail, ThreadPage
from tasks.mail.reading import mail_message, parse
from tasks.mail.thread_pages import walk_page

__all__ = ["ARCHIVE", "INBOX", "RENAMED_RETRIES", "SENT", "MaildirProvider"]

ARCHIVE = "Archive"
SENT = "Sent"

# How often a lookup looks again for a message whose file was renamed under it (by
# another change, which a change waiting for the file's lock may meet a few at a time).
RENAMED_RETRIES = 10
# How old a folder's listing a page after the first of a listing takes as it is.
CONTINUATION_MAX_AGE_SECONDS = 2.0

T = TypeVar("T")


class MaildirProvider:
    def __init__(self, root: Path | str, address: str = "me@localhost") -> None:
        self.root = Path(root)
        self.address = address
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(self.root, create=True)
        self._index = index_for(str(self.root))

    # Reading ------------------------------------------------------------------
    def folder(self, name: str) -> mailbox.Maildir:
        if name == INBOX:
            return self._box
        # Created by hand, not by mailbox.add_folder: two deliveries creating the same
        # folder at once must both see it complete (add_folder makes the subfolders last).
        path = self._folder_path(name)
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "maildirfolder").touch()
        return mailbox.Maildir(path, create=False)

    def _folder_path(self, name: str) -> Path:
        return Path(folder_path(str(self.root), name))

    def folder_names(self) -> list[str]:
        return self._index.folders()

    def _at_file(self, message_id: str, action: Callable[[File], T]) -> T:
        """`action` on the message's file. The index names the file without listing
        anything; when it has gone (another process flagged or moved the message since),
        the changed directories are listed and the action tried again. Not found in any
        of the tries means deleted."""
        for attempt in range(RENAMED_RETRIES):
            file = self._index.find(message_id, fresh=attempt > 0)
            if file is None:
                continue  # a move from a folder not yet listed to one already listed
            try:
                return action(file)
            except FileNotFoundError:
                continue  # renamed, moved or deleted since the index saw it
        raise MessageNotFound(message_id)

    def get_message(self, message_id: str) -> MailMessage:
        return self._at_file(message_id, self._read)

    def _read(self, file: File) -> MailMessage:
        with open(file.path, "rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            message = parse(handle)
        raw = raw_headers(message.raw_items())
        summary = summarise(raw, file.key, mtime)
        return mail_message(
            message,
            raw,
            summary,
            message_id=file.key,
            folder=file.folder,
            read=file.read,
            labels=summary.labels,
            own_address=self.address,
        )

    def get_thread(self, thread_id: str) -> list[MailMessage]:
        found: list[tuple[datetime, str, File]] = []
        index = self._index
        with index.lock:
            for folder in index.folders():
                listing = index.listing(folder)
                for key in listing.threads.get(thread_id, ()):
                    entry = listing.entries[key]
                    found.append((entry.summary.date, key, entry.file))
        messages: list[MailMessage] = []
        for _, _, file in sorted(found, key=lambda item: (item[0], item[1])):
            try:
                messages.append(self._read(file))
            except FileNotFoundError:
                continue  # moved since the listing (it is no longer where we saw it)
        if not messages:
            raise MessageNotFound(thread_id)
        return messages

    def list_threads(
        self,
        *,
        folder: str = INBOX,
        after: datetime | None = None,
        before: datetime | None = None,
        unread_only: bool = False,
        exclude_labels: Sequence[str] = (),
        page_token: str | None = None,
        page_size: int = 25,
    ) -> ThreadPage:
        """Threads with a message in `folder` dated in [after, before), newest first
        (`thread_pages`), walked over the folder's listing kept in the index. A page
        after the first takes the listing as it was up to CONTINUATION_MAX_AGE_SECONDS
        ago: it lists the messages older than the page before's, which the pages before
        have not had the time to change (a bulk run's workers change what was listed
        already), where listing a large folder again for each page would cost in
        proportion to the folder, not the page."""
        max_age = 0.0 if page_token is None else CONTINUATION_MAX_AGE_SECONDS
        with self._index.lock:  # the listing changes in place: walked whole, then let go
            return walk_page(
                self._index.listing(folder, max_age=max_age),
                after=_utc(after),
                before=_utc(before),
                unread_only=unread_only,
                exclude_labels=exclude_labels,
                page_token=page_token,
                page_size=page_size,
            )

    def list_labels(self) -> list[str]:
        labels: set[str] = set()
        index = self._index
        with index.lock:
            folders = index.folders()
            for folder in folders:
                listing = index.listing(folder)
                for found in listing.labels(listing.entries).values():
                    labels |= found
        labels.update(name for name in folders if name not in (INBOX, SENT))
        return sorted(labels)

    def is_starred(self, message: MailMessage) -> bool:
        # Maildir's star is the "F" (flagged) flag, which MailMessage does not carry.
        try:
            file = self._at_file(message.id, _existing)
        except MessageNotFound:
            return False  # gone since the thread was read: it no longer tells
        return "F" in file.flags

    def folder_keys(self, name: str) -> set[str]:
        return set(self.folder(name).keys())

    # Changing -----------------------------------------------------------------
    def archive(self, message_id: str) -> None:
        self.move(message_id, ARCHIVE)

    def move(self, message_id: str, folder: str) -> None:
        def moving(file: File) -> None:
            if file.folder == folder:
                os.stat(file.path)  # there as the index names it, if the file is still there
                return  # already there: moving twice is one move
            self.folder(folder)  # created on first use
            name = os.path.basename(file.path)
            info = name.split(":", 1)[1] if ":" in name else "2,"
            target = self._folder_path(folder) / "cur" / f"{file.key}:{info}"
            with changing(file.path):
                os.rename(file.path, target)
            self._index.changed(file, File(folder, file.key, str(target), file.flags))

        self._at_file(message_id, moving)

    def change_many(
        self,
        message_ids: Sequence[str],
        *,
        labels: Sequence[str] = (),
        archive: bool = False,
        mark_read: bool = False,
    ) -> None:
        change_one_by_one(self, message_ids, labels=labels, archive=archive, mark_read=mark_read)

    def mark_read(self, message_id: str) -> None:
        def marking(file: File) -> None:
            if file.read:
                os.stat(file.path)  # read as the index names it, if the file is still there
                return
            flags = "".join(sorted({*file.flags, "S"}))
            target = os.path.join(self._folder_path(file.folder), "cur", f"{file.key}:2,{flags}")
            with changing(file.path):
                os.rename(file.path, target)
            self._index.changed(file, File(file.folder, file.key, target, flags))

        self._at_file(message_id, marking)

    def label(self, message_id: str, label: str) -> None:
        if problem := label_problem(label):
            raise PermanentError(f"label {label!r}: {problem}")
        wanted = split_labels(label)  # "A, B" is two labels, " A " is "A"

        def labelling(file: File) -> None:
            with changing(file.path) as handle:
                mtime = os.fstat(handle.fileno()).st_mtime
                raw = handle.read()
                headers = parse_headers(io.BytesIO(raw))
                labels = split_labels(header_text(headers.get(LABELS_HEADER.lower(), "")))
                new = [name for name in dict.fromkeys(wanted) if name not in labels]
                if not new:
                    return  # labelled already: labelling again changes nothing
                if any(label_problem(name) for name in labels):  # written by another tool
                    raise PermanentError(f"{message_id}: its labels {labels!r} cannot be written")
                content = with_field(raw, LABELS_HEADER, ", ".join([*labels, *new]))
                self._rewrite(file, content, mtime)

        self._at_file(message_id, labelling)

    def _rewrite(self, file: File, content: bytes, mtime: float) -> None:
        """Replace the file's content under the same name in one rename: a reader sees the
        old message or the new one, never none. The mtime is kept (a message without a
        Date header is dated by it), as mailbox does. Called holding the file's lock."""
        partial = (
            self._folder_path(file.folder) / "tmp" / f"{file.key}.{os.getpid()}.{uuid.uuid4().hex}"
        )
        partial.parent.mkdir(exist_ok=True)
        try:
            with open(partial, "xb") as handle:
                handle.write(content)
            os.utime(partial, (os.stat(partial).st_atime, mtime))
            os.stat(file.path)  # renamed or moved meanwhile: FileNotFoundError, look again
            os.rename(partial, file.path)
        finally:
            partial.unlink(missing_ok=True)
        # The index keeps nothing a rewrite changes: the name is the same, and labels
        # are read from the file where they count (see `maildir_listing`).

    def send(self, mail: OutgoingMail) -> str:
        sent = self.folder(SENT)
        key = sent_key(mail.idempotency_key) if mail.idempotency_key else None
        if key is not None and self._holds(SENT, key):
            return key  # sent before (its flags may have changed since)
        references = self._references_for_reply(mail.in_reply_to) if mail.in_reply_to else []
        message = outgoing_message(mail, self.address, message_id_for(mail), references)
        if key is not None:
            return add_once(self._folder_path(SENT), key, message)
        outgoing = mailbox.MaildirMessage(message)
        outgoing.set_subdir("cur")
        outgoing.add_flag("S")
        return str(sent.add(outgoing))

    def _holds(self, folder: str, key: str) -> bool:
        """Whether the folder has a message of that key, by the index (its file checked)."""
        for fresh in (False, True):
            file = self._index.find(key, fresh=fresh, folders=[folder])
            if file is not None and os.path.lexists(file.path):
                return True
        return False

    def _references_for_reply(self, parent_id: str) -> list[str]:
        """The parent's References plus the parent (RFC 5322 3.6.4), so that a reply to a
        reply keeps the thread's root first and stays in the thread."""
        index = self._index
        with index.lock:
            for folder in index.folders():
                listing = index.listing(folder)
                for key in sorted(listing.by_message_id.get(parent_id, ())):
                    return [*listing.entries[key].summary.references, parent_id]
        return [parent_id]

    def deliver(self, message: EmailMessage) -> str:
        """Put an incoming message in the inbox (demo data and tests)."""
        return str(self._box.add(mailbox.MaildirMessage(message)))


def _existing(file: File) -> File:
    """The file, if it is still where the index names it (else FileNotFoundError)."""
    os.stat(file.path)
    return file


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)
