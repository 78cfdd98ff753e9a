"""Sending from an IMAP account: SMTP submits the email, then a copy is kept in Sent.

One idempotency key sends once. The caller looks for the copy in Sent first; past that,
the send is recorded (`send_once`, the `sent_mail` table) with the copy made inside the
record, so that a database that fails to record it leaves the copy as the guard. A copy
Sent refuses (over quota) is a warning: the email went out all the same, and a retry
could not change the server's mind. A connection cut before the copy raises once the
send is recorded: the retry finds it sent, keeps the copy and sends nothing again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.message import EmailMessage

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from tasks.mail.imap_messages import SEEN
from tasks.mail.send_once import send_once

log = logging.getLogger("jobbridge.mail")


def send_and_keep(
    client: IMAPClient,
    sent_folder: str,
    message: EmailMessage,
    submit: Callable[[], None],
    record_key: str | None,
) -> None:
    """`submit()` (once per `record_key`, when there is one), then the copy in Sent."""
    submitted_here = False
    cut: IMAPClientAbortError | None = None

    def submitted() -> str:
        nonlocal submitted_here, cut
        submitted_here = True
        submit()
        cut = _keep_copy(client, sent_folder, message)
        return str(message["Message-ID"])

    if record_key is None:
        submitted()
    else:
        send_once(record_key, "imap", submitted)
    if not submitted_here:  # sent before, its copy cut off then: kept now
        cut = _keep_copy(client, sent_folder, message)
    if cut is not None:
        raise cut


def _keep_copy(
    client: IMAPClient, sent_folder: str, message: EmailMessage
) -> IMAPClientAbortError | None:
    """Append the copy: None when kept or refused (logged), the error when cut off."""
    try:
        client.append(sent_folder, message.as_bytes(), flags=[SEEN])
    except IMAPClientAbortError as error:
        return error
    except IMAPClientError as error:
        log.warning("sent %s, but Sent refused its copy: %s", message["Message-ID"], error)
    return None
