"""A real mail provider on disk (stdlib `mailbox`, Maildir++ folders), so effects can be watched.

Message ids are Maildir keys, stable across moves; threads are the root Message-ID
of the References chain. Inbox is the Maildir root; other folders are `.Name`.
Labels are the comma-separated X-Keywords header; the Seen flag is the read state.

This module holds the provider and its cache of header summaries. Reading headers is in
`maildir_headers`, page tokens in `maildir_cursor`, storing a send once in `maildir_sent`,
and a body's text in `body_text`.
"""

from __future__ import annotations

import mailbox
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import BinaryIO

from tasks.mail.composing import message_id_for, outgoing_message
from tasks.mail.maildir_headers import (
    LABELS_HEADER,
    Summary,
    as_utc,
    header_text,
    raw_headers,
    split_labels,
    summarise,
)
from tasks.mail.maildir_index import listed_folder
from tasks.mail.maildir_sent import add_once, sent_key
from tasks.mail.one_by_one import change_one_by_one
from tasks.mail.port import MailMessage, MessageNotFound, OutgoingMail, ThreadPage
from tasks.mail.reading import mail_message
from tasks.mail.thread_pages import Listed, walk_page

INBOX = "INBOX"
ARCHIVE = "Archive"
SENT = "Sent"


@dataclass(frozen=True)
class _File:
    """One message file as listed: where it is and what its name says."""

    folder: str
    key: str
    path: str
    read: bool


# How often a read looks again for a message whose file was renamed under it.
RENAMED_RETRIES = 3


class MaildirProvider:
    def __init__(self, root: Path | str, address: str = "me@localhost") -> None:
        self.root = Path(root)
        self.address = address
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(self.root, create=True)

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
        return self.root if name == INBOX else self.root / f".{name}"

    def folder_names(self) -> list[str]:
        return [INBOX, *self._box.list_folders()]

    def _files(self, folders: Iterable[str]) -> Iterator[_File]:
        """Every message file of the folders, by listing the directories (never creating them)."""
        for name in folders:
            for sub in ("cur", "new"):
                try:
                    entries = list(os.scandir(self._folder_path(name) / sub))
                except FileNotFoundError:
                    continue  # a folder never used: nothing in it, and reading must not create it
                for entry in entries:
                    if entry.name.startswith("."):
                        continue  # Maildir readers ignore dot files (editor and sync droppings)
                    key, _, info = entry.name.partition(":")
                    flags = info[2:] if info.startswith("2,") else ""
                    yield _File(name, key, entry.path, read="S" in flags)

    def _locate(self, message_id: str) -> tuple[str, mailbox.Maildir, Path]:
        """The folder holding the message, and its file (one scan, no private API)."""
        for file in self._files(self.folder_names()):
            if file.key == message_id:
                return file.folder, self.folder(file.folder), Path(file.path)
        raise MessageNotFound(message_id)

    def get_message(self, message_id: str) -> MailMessage:
        # A message another job flags or moves gets a new file name while this scan runs:
        # between the listing and the read, or from a folder not yet listed to one
        # already listed. Look again; not found in any of the scans means deleted.
        for _ in range(RENAMED_RETRIES):
            for file in self._files(self.folder_names()):
                if file.key == message_id:
                    try:
                        return self._read(file)
                    except FileNotFoundError:
                        break  # renamed, moved or deleted since the listing
        raise MessageNotFound(message_id)

    def _read(self, file: _File) -> MailMessage:
        with open(file.path, "rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            message = BytesParser(EmailMessage, policy=policy.default).parse(handle)
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
        found: list[tuple[datetime, str, _File]] = []
        for file in self._files(self.folder_names()):
            summary = _summary(file)
            if summary is not None and summary.thread_id == thread_id:
                found.append((summary.date, file.key, file))
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
        (`thread_pages`), from the folder as last scanned while it is unchanged
        (`maildir_index`)."""
        directories = [self._folder_path(folder) / sub for sub in ("cur", "new")]
        return walk_page(
            listed_folder(directories, lambda: self._listed(folder)),
            after=_utc(after),
            before=_utc(before),
            unread_only=unread_only,
            exclude_labels=exclude_labels,
            page_token=page_token,
            page_size=page_size,
        )

    def _listed(self, folder: str) -> Iterator[Listed]:
        for file in self._files([folder]):
            summary = _summary(file)
            if summary is not None:
                yield Listed(summary.thread_id, summary.date, file.key, file.read, summary.labels)

    def list_labels(self) -> list[str]:
        labels: set[str] = set()
        for file in self._files(self.folder_names()):
            summary = _summary(file)
            if summary is not None:
                labels |= summary.labels
        labels.update(name for name in self._box.list_folders() if name not in (INBOX, SENT))
        return sorted(labels)

    def is_starred(self, message: MailMessage) -> bool:
        # Maildir's star is the "F" (flagged) flag, which MailMessage does not carry.
        try:
            flags = self.folder(message.folder).get_message(message.id).get_flags()
        except (KeyError, FileNotFoundError):
            return False  # moved since the thread was read: it no longer tells
        return "F" in flags

    def folder_keys(self, name: str) -> set[str]:
        return set(self.folder(name).keys())

    # Changing -----------------------------------------------------------------
    def archive(self, message_id: str) -> None:
        self.move(message_id, ARCHIVE)

    def move(self, message_id: str, folder: str) -> None:
        current, _, source = self._locate(message_id)
        if current == folder:
            return  # already there: moving twice is one move
        self.folder(folder)  # created on first use
        info = source.name.split(":", 1)[1] if ":" in source.name else "2,"
        os.rename(source, self._folder_path(folder) / "cur" / f"{message_id}:{info}")

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
        _, box, _ = self._locate(message_id)
        message = box.get_message(message_id)
        if "S" in message.get_flags():
            return
        message.add_flag("S")
        message.set_subdir("cur")
        box[message_id] = message

    def label(self, message_id: str, label: str) -> None:
        _, box, _ = self._locate(message_id)
        message = box.get_message(message_id)
        labels = split_labels(header_text(str(message.get(LABELS_HEADER, ""))))
        if label in labels:
            return
        del message[LABELS_HEADER]
        message[LABELS_HEADER] = ", ".join([*labels, label])
        box[message_id] = message

    def send(self, mail: OutgoingMail) -> str:
        sent = self.folder(SENT)
        key = sent_key(mail.idempotency_key) if mail.idempotency_key else None
        if key is not None and any(file.key == key for file in self._files([SENT])):
            return key  # sent before (its flags may have changed since)
        references = self._references_for_reply(mail.in_reply_to) if mail.in_reply_to else []
        message = outgoing_message(mail, self.address, message_id_for(mail), references)
        if key is not None:
            return add_once(self._folder_path(SENT), key, message)
        outgoing = mailbox.MaildirMessage(message)
        outgoing.set_subdir("cur")
        outgoing.add_flag("S")
        return str(sent.add(outgoing))

    def _references_for_reply(self, parent_id: str) -> list[str]:
        """The parent's References plus the parent (RFC 5322 3.6.4), so that a reply to a
        reply keeps the thread's root first and stays in the thread."""
        for file in self._files(self.folder_names()):
            summary = _summary(file)
            if summary is not None and summary.message_id == parent_id:
                return [*summary.references, parent_id]
        return [parent_id]

    def deliver(self, message: EmailMessage) -> str:
        """Put an incoming message in the inbox (demo data and tests)."""
        return str(self._box.add(mailbox.MaildirMessage(message)))


# Header summaries, cached ------------------------------------------------------------
# Listing reads the headers of every message in a folder on every call; the cache makes
# the next call one directory scan plus one open and fstat per file. The key includes
# ctime and size, which any rewrite changes (mailbox restores the mtime on rewrites).
_CACHE_SIZE = 50_000
_cache: OrderedDict[tuple[str, int, int, int], Summary] = OrderedDict()
_cache_lock = threading.Lock()  # Celery thread pools share this module


def _summary(file: _File) -> Summary | None:
    """The message's summary, or None when the file has gone since it was listed."""
    try:
        with open(file.path, "rb") as handle:
            # fstat of the open file: the key describes exactly the content read below.
            stat = os.fstat(handle.fileno())
            key = (file.path, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
            with _cache_lock:
                cached = _cache.get(key)
                if cached is not None:
                    _cache.move_to_end(key)
                    return cached
            raw = _parse_headers(handle)
    except FileNotFoundError:
        return None
    summary = summarise(raw, file.key, stat.st_mtime)
    with _cache_lock:
        _cache[key] = summary
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return summary


def _parse_headers(handle: BinaryIO) -> dict[str, str]:
    """The header block only: a message's attachments are never read to list it."""
    lines: list[bytes] = []
    for line in handle:
        if line in (b"\n", b"\r\n"):
            break
        lines.append(line)
    return raw_headers(BytesHeaderParser().parsebytes(b"".join(lines)).raw_items())


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)
