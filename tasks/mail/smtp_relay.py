"""Sending through the SMTP server of SMTP_URL, when it is set and RESEND_API_KEY is not.

The message is the one every adapter sends (composing.outgoing_message: its Message-ID
derived from the idempotency key), from SMTP_FROM, or from the account's own address
when SMTP_FROM is unset. SMTP knows no idempotency key: send_once's record is what makes
a repeated send go out once.

Failures as smtp_submit maps them for every SMTP server, with hints naming SMTP_URL or
SMTP_FROM.
"""

from __future__ import annotations

from tasks.mail.composing import message_id_for, outgoing_message, recipients_of
from tasks.mail.imap_session import ServerSettings
from tasks.mail.port import OutgoingMail
from tasks.mail.smtp_submit import submit


class SmtpRelay:
    transport = "smtp"

    def __init__(self, server: ServerSettings, from_address: str | None) -> None:
        self.server, self.from_address = server, from_address

    def sender_address(self, account_email: str) -> str:
        """The address the account's digests come from: SMTP_FROM, else the account's own."""
        return self.from_address or account_email

    def send(self, mail: OutgoingMail, account_email: str) -> str:
        """Send and return the message's Message-ID."""
        sender = self.sender_address(account_email)
        message_id = message_id_for(mail)
        references = [mail.in_reply_to] if mail.in_reply_to else []
        message = outgoing_message(mail, sender, message_id, references)
        submit(
            self.server,
            message,
            sender,
            recipients_of(mail),
            self._where,
            login_hint=" (put its user and password in SMTP_URL: smtp://user:password@...)",
            sender_hint=f" (the sender {sender}: set SMTP_FROM to one it may send from)",
        )
        return message_id

    @property
    def _where(self) -> str:
        return f"the SMTP server of SMTP_URL ({self.server.host}:{self.server.port})"
