"""Submitting a message to an SMTP server: one definition of the session (TLS, STARTTLS,
EHLO, login) and of what each failure means to a job, for the IMAP account's own SMTP
server and for SMTP_URL alike.

A refused login, refused recipients, a 5xx answer or a failed TLS handshake are
permanent (PermanentError: retrying cannot help); an unreachable server, a dropped
connection or a 4xx answer are transient (ConnectionError: the job is retried).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from bridge.outcome import PermanentError
from tasks.mail.imap_session import TIMEOUT_SECONDS, MailLoginRefused, ServerSettings
from tasks.mail.tls import client_context


def open_smtp(server: ServerSettings, where: str, login_hint: str = "") -> smtplib.SMTP:
    """A session with the server, logged in when there is a user and the server offers
    AUTH (a relay that trusts this host needs no login)."""
    context = client_context()
    smtp: smtplib.SMTP | None = None
    try:
        if server.security == "tls":
            smtp = smtplib.SMTP_SSL(
                server.host, server.port, timeout=TIMEOUT_SECONDS, context=context
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS)
            if server.security == "starttls":
                smtp.starttls(context=context)
        # What the server offers, asked anew after STARTTLS (RFC 3207): smtplib knows no
        # extension before an EHLO, and has_extn("auth") would be false.
        smtp.ehlo()
        if server.username and smtp.has_extn("auth"):
            smtp.login(server.username, server.password)
    except smtplib.SMTPAuthenticationError:
        _close(smtp)
        raise MailLoginRefused(
            f"{where} refused the login of user {server.username!r}{login_hint}"
        ) from None
    except smtplib.SMTPNotSupportedError:
        _close(smtp)
        raise PermanentError(f"{where} offers no STARTTLS: use implicit TLS if it has it") from None
    except ssl.SSLError as error:
        _close(smtp)
        raise PermanentError(f"{where}: TLS failed: {error}") from None
    except OSError as error:  # smtplib's connection errors are OSErrors too
        _close(smtp)
        raise ConnectionError(f"{where} unreachable: {error}") from None
    return smtp


def submit(
    server: ServerSettings,
    message: EmailMessage,
    sender: str,
    recipients: Sequence[str],
    where: str,
    *,
    login_hint: str = "",
    sender_hint: str = "",
) -> None:
    """Send the message to the recipients (Bcc included; the header is not sent)."""
    smtp = open_smtp(server, where, login_hint)
    try:
        smtp.send_message(message, from_addr=sender, to_addrs=list(recipients))
    except smtplib.SMTPRecipientsRefused as error:
        refused = ", ".join(sorted(error.recipients))
        raise PermanentError(f"{where} refused every recipient: {refused}") from None
    except smtplib.SMTPResponseException as error:
        text = error.smtp_error
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        detail = f"{where} answered {error.smtp_code}: {text}"
        if not 500 <= error.smtp_code < 600:
            raise ConnectionError(detail) from None  # 4xx: try again later
        if error.smtp_code == 530:  # authentication required (RFC 4954)
            detail += login_hint
        elif isinstance(error, smtplib.SMTPSenderRefused):
            detail += sender_hint
        raise PermanentError(detail) from None
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()
