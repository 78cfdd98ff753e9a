"""What the jobs need from a mailbox, whatever holds it (Maildir, Gmail, Microsoft Graph)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bridge.outcome import PermanentError


class MessageNotFound(LookupError):
    """The message no longer exists: actions on it complete without effect."""


class AccountDisconnected(PermanentError):
    """The provider refused the account's refresh token (revoked, expired, password
    changed): only the person can fix it, by connecting the account again."""

    def __init__(self, email: str, provider: str, detail: str = "") -> None:
        reason = f" ({detail})" if detail else ""
        super().__init__(
            f"{email}: {provider} refused the stored refresh token{reason}; reconnect this "
            f"account: jobbridge accounts connect {provider} {email}"
        )
        self.email = email
        self.provider = provider


class InvalidPageToken(PermanentError):
    """A page token this mailbox did not issue: the same token fails the same way again."""


@dataclass(frozen=True)
class MailMessage:
    id: str
    thread_id: str
    sender: str
    to: str
    subject: str
    body: str  # plain text (the text/plain part, or text extracted from HTML)
    folder: str
    read: bool
    labels: frozenset[str] = field(default_factory=frozenset)
    message_id_header: str = ""
    date: datetime | None = None  # aware UTC
    # Header names lower-cased -> value, for the headers rules look at
    # (list-unsubscribe, list-id, precedence, auto-submitted, ...).
    headers: dict[str, str] = field(default_factory=dict)
    has_attachment: bool = False
    sent_by_me: bool = False  # From is the account's own address


@dataclass(frozen=True)
class ThreadPage:
    thread_ids: list[str]
    next_page_token: str | None  # None on the last page
    # Each listed thread's newest message in the folder and window, where the provider
    # knows it from the listing itself (saves a get_thread per thread).
    newest_message_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    body: str
    cc: str | None = None
    bcc: str | None = None
    in_reply_to: str | None = None
    html: str | None = None  # sent as the text/html alternative to `body`
    from_name: str | None = None  # display name beside the account's own address
    # Sending twice with one key sends once: at-least-once delivery must not spam.
    idempotency_key: str | None = None


class MailProvider(Protocol):
    def get_message(self, message_id: str) -> MailMessage: ...

    def get_thread(self, thread_id: str) -> list[MailMessage]:
        """Every message of the thread, oldest first; MessageNotFound if there is none."""
        ...

    def list_threads(
        self,
        *,
        folder: str = "INBOX",
        after: datetime | None = None,
        before: datetime | None = None,
        unread_only: bool = False,
        exclude_labels: Sequence[str] = (),
        page_token: str | None = None,
        page_size: int = 25,
    ) -> ThreadPage:
        """Threads with a message in `folder` dated in [after, before), newest first.

        Page tokens are cursors, not offsets: threads archived between two pages are
        neither skipped nor repeated.
        """
        ...

    def list_labels(self) -> list[str]: ...

    def is_starred(self, message: MailMessage) -> bool:
        """Whether the user starred (flagged) the message, in the mailbox's own terms."""
        ...

    def archive(self, message_id: str) -> None: ...

    def label(self, message_id: str, label: str) -> None: ...

    def mark_read(self, message_id: str) -> None: ...

    def move(self, message_id: str, folder: str) -> None: ...

    def change_many(
        self,
        message_ids: Sequence[str],
        *,
        labels: Sequence[str] = (),
        archive: bool = False,
        mark_read: bool = False,
    ) -> None:
        """Label, archive and/or mark read these messages together, in as few requests
        as the provider has (Gmail: batchModify; Graph: $batch; one by one elsewhere).
        Messages that no longer exist are passed over; doing it again changes nothing."""
        ...

    def send(self, mail: OutgoingMail) -> str:
        """Send and return the provider's id of the sent message."""
        ...
