"""An SMTP server for the suite (aiosmtpd on 127.0.0.1, a free port) in front of the test
Dovecot: it delivers what it accepts over LMTP, so mail sent to a test user's address
arrives in that user's INBOX, and it keeps each accepted message for tests to look at.

Dovecot decides who exists: a recipient it does not know is refused with its 550 at RCPT,
as a real mail server would, and the rest of the message still goes to the others.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.dovecot import Dovecot
from tests.support.services import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: its envelope, and its bytes as the client sent them."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


class _LmtpRelay:
    """aiosmtpd handler: asks Dovecot about each recipient, then delivers to each.

    One LMTP transaction per recipient: LMTP answers DATA once per recipient, and
    smtplib.LMTP.sendmail reads only one answer. smtplib blocks, so it runs in a thread
    of its own, leaving the server's event loop free for other clients."""

    def __init__(self, lmtp_host: str, lmtp_port: int) -> None:
        self.lmtp_host, self.lmtp_port = lmtp_host, lmtp_port
        self.received: list[ReceivedMessage] = []
        self.lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        code, message = await asyncio.to_thread(self._lmtp_rcpt, envelope.mail_from, address)
        if code >= 300:
            return f"{code} {message}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        failures = await asyncio.to_thread(self._deliver, mail_from, envelope.rcpt_tos, data)
        if failures:
            # The recipients were known at RCPT: Dovecot failing now is the suite's fault.
            return "451 4.3.0 LMTP delivery failed: " + "; ".join(failures)
        with self.lock:
            self.received.append(ReceivedMessage(mail_from, tuple(envelope.rcpt_tos), data))
        return "250 OK delivered"

    def _lmtp(self) -> smtplib.LMTP:
        return smtplib.LMTP(self.lmtp_host, self.lmtp_port, timeout=10)

    def _lmtp_rcpt(self, mail_from: str | None, address: str) -> tuple[int, str]:
        """Dovecot's answer to RCPT TO:<address> (550 5.1.1 for a user it does not know)."""
        with self._lmtp() as lmtp:
            lmtp.ehlo()  # LHLO
            lmtp.mail(mail_from or "")
            code, message = lmtp.rcpt(address)
        return code, message.decode(errors="replace")

    def _deliver(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> list[str]:
        failures = []
        for address in rcpt_tos:
            try:
                with self._lmtp() as lmtp:
                    lmtp.sendmail(mail_from, [address], data)
            except smtplib.SMTPRecipientsRefused as error:
                code, reply = error.recipients[address]
                failures.append(f"{address}: {code} {reply.decode(errors='replace')}")
            except smtplib.SMTPException as error:
                failures.append(f"{address}: {error}")
        return failures


class SmtpServer:
    """SMTP on host:port, delivering to a Dovecot; `messages` are those it accepted."""

    def __init__(self, dovecot: Dovecot) -> None:
        self._relay = _LmtpRelay(dovecot.host, dovecot.lmtp_port)
        self._controller = Controller(self._relay, hostname=HOST, port=free_port())
        self.host, self.port = HOST, int(self._controller.port)

    def start(self) -> None:
        self._controller.start()  # returns once the server answers

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message accepted so far, oldest first (a copy)."""
        with self._relay.lock:
            return list(self._relay.received)

    def messages_to(self, address: str) -> list[ReceivedMessage]:
        """The accepted messages with this address among their recipients (any case)."""
        wanted = address.lower()
        return [
            message
            for message in self.messages
            if wanted in (recipient.lower() for recipient in message.rcpt_tos)
        ]

    def stop(self) -> None:
        self._controller.stop()


def start_smtp(dovecot: Dovecot) -> SmtpServer:
    server = SmtpServer(dovecot)
    server.start()
    return server
