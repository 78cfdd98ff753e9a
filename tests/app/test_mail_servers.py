"""The suite's mail servers do what the IMAP adapter's tests rely on: a fresh Dovecot user
logs in and finds the special-use folders, THREAD and custom keywords; mail sent to the
SMTP server reaches the recipient's INBOX, and the server keeps what it accepted."""

from __future__ import annotations

import email
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

from imapclient import IMAPClient
from imapclient.imapclient import ARCHIVE, SENT

from tests.conftest import ImapUser
from tests.support.smtp_server import SmtpServer
from tests.support.wait import wait_for


def connect(user: ImapUser) -> IMAPClient:
    client = IMAPClient(user.host, port=user.port, ssl=False, timeout=10)
    client.login(user.username, user.password)
    return client


def message_to(user: ImapUser, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "sender@example.test"
    message["To"] = user.address
    message["Subject"] = subject
    message["Message-ID"] = make_msgid("test")
    message.set_content(f"Body of {subject}.")
    return message


def test_a_fresh_user_logs_in_to_the_folders_threads_and_keywords_of_a_real_server(
    imap_user: ImapUser,
) -> None:
    with connect(imap_user) as client:
        assert client.find_special_folder(ARCHIVE) == "Archive"
        assert client.find_special_folder(SENT) == "Sent"
        assert b"THREAD=REFERENCES" in client.capabilities()
        inbox = client.select_folder("INBOX")
        assert b"\\*" in inbox[b"PERMANENTFLAGS"]  # the client may create keywords
        assert inbox[b"EXISTS"] == 0


def test_mail_sent_over_smtp_arrives_in_the_recipients_inbox(
    imap_user: ImapUser, smtp_server: SmtpServer
) -> None:
    subject = f"Hello {uuid.uuid4().hex[:8]}"
    message = message_to(imap_user, subject)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.send_message(message)

    [received] = smtp_server.messages_to(imap_user.address)
    assert (received.mail_from, received.rcpt_tos) == ("sender@example.test", (imap_user.address,))
    assert email.message_from_bytes(received.data)["Message-ID"] == message["Message-ID"]
    with connect(imap_user) as client:
        client.select_folder("INBOX", readonly=True)

        def arrived() -> list[int]:
            client.noop()  # lets the server report new mail in the selected folder
            return list(client.search(["SUBJECT", subject]))

        [uid] = wait_for(arrived, timeout=10, what="the message in the INBOX")
        envelope = client.fetch([uid], ["ENVELOPE"])[uid][b"ENVELOPE"]
        assert envelope.subject.decode() == subject


def test_the_smtp_server_refuses_recipients_dovecot_does_not_know(
    imap_user: ImapUser, smtp_server: SmtpServer
) -> None:
    stranger = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
    message = message_to(imap_user, "Two recipients")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        refused = smtp.send_message(message, to_addrs=[imap_user.address, stranger])

    assert refused[stranger][0] == 550
    assert [m.rcpt_tos for m in smtp_server.messages_to(imap_user.address)] == [
        (imap_user.address,)
    ]
    assert smtp_server.messages_to(stranger) == []
