"""What the jobs need from a mailbox, whatever holds it (Maildir, Gmail, Microsoft Graph)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class MessageNotFound(LookupError):
    """The message no longer exists: actions on it complete without effect."""


@dataclass(frozen=True)
class MailMessage:
    id: str
    thread_id: str
    sender: str
    to: str
    subject: str
    body: str
    folder: str
    read: bool
    labels: frozenset[str] = field(default_factory=frozenset)
    message_id_header: str = ""


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    body: str
    cc: str | None = None
    bcc: str | None = None
    in_reply_to: str | None = None
    # Sending twice with one key sends once: at-least-once delivery must not spam.
    idempotency_key: str | None = None


class MailProvider(Protocol):
    def get_message(self, message_id: str) -> MailMessage: ...

    def archive(self, message_id: str) -> None: ...

    def label(self, message_id: str, label: str) -> None: ...

    def mark_read(self, message_id: str) -> None: ...

    def move(self, message_id: str, folder: str) -> None: ...

    def send(self, mail: OutgoingMail) -> str:
        """Send and return the provider's id of the sent message."""
        ...
