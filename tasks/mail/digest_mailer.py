"""How the app's own emails to a user (digests, summaries) are sent: through Resend when
RESEND_API_KEY is set, else through the SMTP server of SMTP_URL, else through the
account's own mailbox, as before either existed (tasks/mail/delivery_settings.py).

Every way sends once per idempotency key: the own mailbox by the copy its adapter keeps
in Sent under the key, Resend and SMTP by send_once's record (with Resend's own
Idempotency-Key behind it).
"""

from __future__ import annotations

from typing import Protocol

from tasks.mail.delivery_settings import DeliverySettings, Transport, load_delivery_settings
from tasks.mail.port import MailProvider, OutgoingMail
from tasks.mail.resend_relay import ResendRelay
from tasks.mail.send_once import send_once
from tasks.mail.smtp_relay import SmtpRelay
from tasks.models import EmailAccount


class Relay(Protocol):
    """A server that sends for the app, not one of the account's own."""

    transport: str

    def sender_address(self, account_email: str) -> str: ...

    def send(self, mail: OutgoingMail, account_email: str) -> str:
        """Send now, whatever was sent before; the relay's id of the email."""
        ...


class DigestMailer:
    """Sends an account's digests and summaries to its user, the way the settings chose."""

    def __init__(self, relay: Relay | None) -> None:
        self.relay = relay  # None: the account's own mailbox

    @property
    def transport(self) -> Transport:
        return Transport(self.relay.transport) if self.relay else Transport.MAILBOX

    def sender_address(self, account_email: str) -> str:
        """The address the account's digests come from (the digest sender's own mail is
        recognised by it, so that a DIGEST rule never digests a digest)."""
        return self.relay.sender_address(account_email) if self.relay else account_email

    def send(self, account: EmailAccount, mail: OutgoingMail, mailbox: MailProvider) -> str:
        """Send `mail` to the account's user, once per idempotency key; the id of the sent
        email. `mailbox` is the account's own, used when no relay is configured."""
        relay = self.relay
        if relay is None:
            return mailbox.send(mail)
        if mail.idempotency_key is None:
            return relay.send(mail, account.email)
        return send_once(
            mail.idempotency_key, relay.transport, lambda: relay.send(mail, account.email)
        )


def digest_mailer(settings: DeliverySettings | None = None) -> DigestMailer:
    """The mailer the RESEND_* and SMTP_* variables choose, read now (ConfigError names a
    bad one); the one place a way of sending is chosen, so no job names one."""
    settings = load_delivery_settings() if settings is None else settings
    if settings.transport is Transport.RESEND:
        assert settings.resend_api_key is not None and settings.resend_from is not None
        return DigestMailer(ResendRelay(settings.resend_api_key, settings.resend_from))
    if settings.transport is Transport.SMTP:
        return DigestMailer(SmtpRelay(settings.smtp_server(), settings.smtp_from))
    return DigestMailer(None)
