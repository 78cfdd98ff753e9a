"""`MailProvider.change_many` for a mailbox with no batch request (Maildir, IMAP): each
message in turn, through the provider's own single-message actions."""

from __future__ import annotations

from collections.abc import Sequence

from tasks.mail.port import MailProvider, MessageNotFound


def change_one_by_one(
    mail: MailProvider,
    message_ids: Sequence[str],
    *,
    labels: Sequence[str],
    archive: bool,
    mark_read: bool,
) -> None:
    for message_id in dict.fromkeys(message_ids):
        try:
            for label in labels:
                mail.label(message_id, label)
            if mark_read:
                mail.mark_read(message_id)
            if archive:
                mail.archive(message_id)
        except MessageNotFound:
            continue  # deleted since it was listed: nothing to change
