"""Run one scheduled action through the mail port."""

from __future__ import annotations

from tasks.mail.port import MailProvider, OutgoingMail
from tasks.models import ActionType, ScheduledAction
from tasks.outcome import PermanentError


def _required(value: str | None, what: str, action: ScheduledAction) -> str:
    if not value:
        raise PermanentError(f"{action.action_type.value} action {action.id} has no {what}")
    return value


def apply_action(mail: MailProvider, action: ScheduledAction) -> str | None:
    """Perform the action; return the provider's id of what it created, if anything.

    Raises MessageNotFound when the message is gone (the caller completes without effect).
    """
    message_id = action.message_id
    # One key per action: a redelivered send is recognised and not sent twice.
    key = f"scheduled-action-{action.id}"
    match action.action_type:
        case ActionType.ARCHIVE:
            mail.archive(message_id)
        case ActionType.MARK_READ:
            mail.mark_read(message_id)
        case ActionType.LABEL:
            mail.label(message_id, _required(action.label or action.label_id, "label", action))
        case ActionType.MOVE_FOLDER:
            folder = _required(action.folder_name or action.folder_id, "folder", action)
            mail.move(message_id, folder)
        case ActionType.SEND_EMAIL:
            return mail.send(
                OutgoingMail(
                    to=_required(action.to, "recipient (to)", action),
                    subject=action.subject or "",
                    body=action.content or "",
                    cc=action.cc,
                    bcc=action.bcc,
                    idempotency_key=key,
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
                    idempotency_key=key,
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
                    to=_required(action.to, "recipient (to)", action),
                    subject=f"Fwd: {original.subject}",
                    body=body,
                    cc=action.cc,
                    bcc=action.bcc,
                    idempotency_key=key,
                )
            )
    return None
