"""Perform one mail action (from a rule or a scheduled action) through the mail port."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.outcome import PermanentError
from tasks.mail.port import MailProvider, OutgoingMail
from tasks.models import ActionType, ScheduledAction


@dataclass(frozen=True)
class MailAction:
    type: ActionType
    message_id: str
    # Sends with one key send once: a redelivered action is recognised, not repeated.
    idempotency_key: str
    label: str | None = None
    folder: str | None = None
    to: str | None = None
    cc: str | None = None
    bcc: str | None = None
    subject: str | None = None
    content: str | None = None

    @classmethod
    def from_scheduled(cls, row: ScheduledAction) -> MailAction:
        return cls(
            type=row.action_type,
            message_id=row.message_id,
            idempotency_key=f"scheduled-action-{row.id}",
            label=row.label or row.label_id,
            folder=row.folder_name or row.folder_id,
            to=row.to,
            cc=row.cc,
            bcc=row.bcc,
            subject=row.subject,
            content=row.content,
        )

    def required(self, value: str | None, what: str) -> str:
        if not value:
            raise PermanentError(f"{self.type.value} action ({self.idempotency_key}) has no {what}")
        return value


def perform(mail: MailProvider, action: MailAction) -> str | None:
    """Perform the action; return the provider's id of what it created, if anything.

    Raises MessageNotFound when the message is gone (the caller completes without effect).
    """
    message_id = action.message_id
    match action.type:
        case ActionType.ARCHIVE:
            mail.archive(message_id)
        case ActionType.MARK_READ:
            mail.mark_read(message_id)
        case ActionType.LABEL:
            mail.label(message_id, action.required(action.label, "label"))
        case ActionType.MOVE_FOLDER:
            mail.move(message_id, action.required(action.folder, "folder"))
        case ActionType.SEND_EMAIL:
            return mail.send(
                OutgoingMail(
                    to=action.required(action.to, "recipient (to)"),
                    subject=action.subject or "",
                    body=action.content or "",
                    cc=action.cc,
                    bcc=action.bcc,
                    idempotency_key=action.idempotency_key,
                )
            )
        case ActionType.REPLY:
            original = mail.get_message(message_id)
            subject = original.subject
            return mail.send(
                OutgoingMail(
                    to=action.to or original.sender,
                    subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
                    body=action.content or "",
                    cc=action.cc,
                    bcc=action.bcc,
                    in_reply_to=original.message_id_header or None,
                    idempotency_key=action.idempotency_key,
                )
            )
        case ActionType.FORWARD:
            original = mail.get_message(message_id)
            body = (
                f"{action.content or ''}\n\n---------- Forwarded message ----------\n"
                f"From: {original.sender}\nSubject: {original.subject}\n\n{original.body}"
            )
            return mail.send(
                OutgoingMail(
                    to=action.required(action.to, "recipient (to)"),
                    subject=f"Fwd: {original.subject}",
                    body=body,
                    cc=action.cc,
                    bcc=action.bcc,
                    idempotency_key=action.idempotency_key,
                )
            )
    return None
