"""A real mail provider on disk (stdlib `mailbox`, Maildir++ folders), so effects can be watched.

Message ids are Maildir keys, stable across moves; threads are the root Message-ID
of the References chain. Inbox is the Maildir root; other folders are `.Name`.
"""

from __future__ import annotations

import mailbox
import os
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from tasks.mail.port import MailMessage, MessageNotFound, OutgoingMail

INBOX = "INBOX"
ARCHIVE = "Archive"
SENT = "Sent"
LABELS_HEADER = "X-Keywords"


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

    def _locate(self, message_id: str) -> tuple[str, mailbox.Maildir, Path]:
        """The folder holding the message, and its file (one scan, no private API)."""
        for name in self.folder_names():
            box = self.folder(name)
            for sub in ("cur", "new"):
                directory = self._folder_path(name) / sub
                if not directory.is_dir():
                    continue
                for entry in os.scandir(directory):
                    if entry.name.split(":", 1)[0] == message_id:
                        return name, box, Path(entry.path)
        raise MessageNotFound(message_id)

    def get_message(self, message_id: str) -> MailMessage:
        name, box, _ = self._locate(message_id)
        message = box.get_message(message_id)
        payload = message.get_payload(decode=True) if not message.is_multipart() else b""
        body = payload.decode(errors="replace") if isinstance(payload, bytes) else ""
        references = (message.get("References") or "").split()
        own = message.get("Message-ID", "")
        return MailMessage(
            id=message_id,
            thread_id=references[0] if references else own or message_id,
            sender=message.get("From", ""),
            to=message.get("To", ""),
            subject=message.get("Subject", ""),
            body=body,
            folder=name,
            read="S" in message.get_flags(),
            labels=frozenset(_labels(message)),
            message_id_header=own,
        )

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
        labels = _labels(message)
        if label in labels:
            return
        del message[LABELS_HEADER]
        message[LABELS_HEADER] = ", ".join([*labels, label])
        box[message_id] = message

    def send(self, mail: OutgoingMail) -> str:
        sent = self.folder(SENT)
        header = f"<{mail.idempotency_key}@jobbridge>" if mail.idempotency_key else make_msgid()
        if mail.idempotency_key:
            for key, existing in sent.iteritems():
                if existing.get("Message-ID") == header:
                    return str(key)
        message = EmailMessage()
        message["From"] = self.address
        message["To"] = mail.to
        if mail.cc:
            message["Cc"] = mail.cc
        if mail.bcc:
            message["Bcc"] = mail.bcc
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = header
        if mail.in_reply_to:
            message["In-Reply-To"] = mail.in_reply_to
            message["References"] = mail.in_reply_to
        message.set_content(mail.body)
        outgoing = mailbox.MaildirMessage(message)
        outgoing.set_subdir("cur")
        outgoing.add_flag("S")
        return str(sent.add(outgoing))

    def deliver(self, message: EmailMessage) -> str:
        """Put an incoming message in the inbox (demo data and tests)."""
        return str(self._box.add(mailbox.MaildirMessage(message)))


def _labels(message: mailbox.MaildirMessage) -> list[str]:
    raw = message.get(LABELS_HEADER, "")
    return [part.strip() for part in raw.split(",") if part.strip()]
