"""The message an `ai.digest` job summarises: named by its ids, read from the mailbox
when the job runs, so that no queue (Inngest's event history, QStash's message log)
keeps a copy of the mail. The replaced app put the message's sender, subject and text
in the event itself; those messages, still in flight at the switch, are read as they
are."""

from __future__ import annotations

from pydantic import Field

from bridge.payload import Address, ExternalId, Payload, Text
from tasks.mail.port import MailMessage, MailProvider, MessageNotFound
from tasks.models import EmailAccount


class DigestMessage(Payload):
    id: ExternalId
    thread_id: ExternalId
    # The replaced app's copy of the message; this app sends ids only.
    from_: Address | None = Field(None, alias="from")
    to: Text | None = None
    subject: Text | None = None
    content: Text | None = None


def message_to_summarise(
    account: EmailAccount, message: DigestMessage, mail: MailProvider
) -> MailMessage | None:
    """The message as carried (the replaced app's shape) or as the mailbox has it now;
    None when it carries no text and the mailbox no longer has it."""
    if message.content is not None:
        return MailMessage(
            id=message.id,
            thread_id=message.thread_id,
            sender=message.from_ or "",
            to=message.to or account.email,
            subject=message.subject or "",
            body=message.content,
            folder="INBOX",
            read=False,
        )
    try:
        return mail.get_message(message.id)
    except MessageNotFound:
        return None
