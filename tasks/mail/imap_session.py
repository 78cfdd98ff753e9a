"""Connecting to an account's IMAP and SMTP servers: the settings, the security modes and
what a failure means for a job.

`security` is `tls` (implicit TLS), `starttls` (upgrade a plain connection) or `none`
(plain text, refused unless the host is a loopback address: a test server). A refused
login is permanent (retrying the same password cannot help), and so is a TLS handshake
that fails (a plain-text port, a certificate that does not verify, no STARTTLS): the
error names the server and why. A refused or dropped connection is transient (the job is
retried), and so is a login the server refuses for now (RFC 5530 UNAVAILABLE, INUSE, or
LIMIT: the user has as many connections as the server allows). No error carries the
password.
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Literal

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, LoginError

from bridge.outcome import PermanentError
from tasks.mail.tls import client_context

Security = Literal["tls", "starttls", "none"]
_LOGIN_LATER = ("[UNAVAILABLE]", "[LIMIT]", "[INUSE]")
TIMEOUT_SECONDS = 30.0


class MailLoginRefused(PermanentError):
    """The server refused the account's credentials: fix them, then run the job again."""


@dataclass(frozen=True)
class ServerSettings:
    """One server of an account: where it is, how to secure it, who logs in."""

    host: str
    port: int
    security: Security
    username: str
    password: str

    def __post_init__(self) -> None:
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError(
                f"security none sends the password in plain text: only for a loopback host, "
                f"not {self.host!r}"
            )

    def __repr__(self) -> str:  # the password never reaches a log or an error
        return (
            f"ServerSettings(host={self.host!r}, port={self.port}, "
            f"security={self.security!r}, username={self.username!r})"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# OpenSSL's reasons when the other side does not speak TLS at all.
_NOT_TLS = {
    "WRONG_VERSION_NUMBER",
    "RECORD_LAYER_FAILURE",
    "HTTP_REQUEST",
    "PACKET_LENGTH_TOO_LONG",
}


def tls_failure(where: str, error: ssl.SSLError) -> Exception:
    """What a failed TLS handshake means to a job, in words: a closed connection is
    transient; anything else needs the settings or the server's certificate changed."""
    if isinstance(error, ssl.SSLEOFError) or error.reason == "UNEXPECTED_EOF_WHILE_READING":
        return ConnectionError(
            f"{where}: the server closed the connection during the TLS handshake"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        why = (
            f"the server's certificate does not verify ({error.verify_message}): renew or fix "
            "it, or install its issuer's certificate on this host"
        )
    elif error.reason in _NOT_TLS:
        why = (
            f"the server did not answer in TLS ({error.reason}): a plain-text port? "
            "`security: tls` needs the server's TLS port (usually 993 for IMAP, 465 for "
            "SMTP); `security: starttls` upgrades a plain one (143, 587)"
        )
    else:
        why = f"{error.reason or error}"
    return PermanentError(f"{where}: TLS failed: {why}")


def open_imap(server: ServerSettings) -> IMAPClient:
    """A logged-in IMAP connection."""
    where = f"IMAP {server.host}:{server.port}"
    context = client_context()
    client: IMAPClient | None = None
    try:
        client = IMAPClient(
            server.host,
            port=server.port,
            ssl=server.security == "tls",
            ssl_context=context,
            timeout=TIMEOUT_SECONDS,
        )
        if server.security == "starttls":
            client.starttls(context)
    except CapabilityError:  # asked for STARTTLS, which the server does not offer
        _shutdown(client)
        raise PermanentError(
            f"{where}: TLS failed: the server offers no STARTTLS; use `security: tls` with "
            "its TLS port (usually 993)"
        ) from None
    except ssl.SSLError as error:
        _shutdown(client)
        raise tls_failure(where, error) from None
    except ConnectionResetError:  # connected, then reset: the server's way to close too
        _shutdown(client)
        during = " during the TLS handshake" if server.security == "tls" else ""
        raise ConnectionError(f"{where}: the server closed the connection{during}") from None
    except (TimeoutError, OSError) as error:
        _shutdown(client)
        raise ConnectionError(f"{where} unreachable: {error}") from None
    except imaplib.IMAP4.abort as error:  # connected, then closed before a greeting
        _shutdown(client)
        raise ConnectionError(f"{where} closed the connection: {error}") from None
    try:
        client.login(server.username, server.password)
    except LoginError as error:
        _shutdown(client)
        # RFC 5530: the login cannot be checked now, or the user has as many connections
        # as the server allows: both pass, so the job is tried again later.
        if any(code in str(error) for code in _LOGIN_LATER):
            raise ConnectionError(f"{where}: login not possible now: {error}") from None
        raise MailLoginRefused(f"{where}: login refused for user {server.username!r}") from None
    return client


def _shutdown(client: IMAPClient | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.shutdown()
