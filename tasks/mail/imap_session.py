"""Connecting to an account's IMAP and SMTP servers: the settings, the security modes and
what a failure means for a job.

`security` is `tls` (implicit TLS), `starttls` (upgrade a plain connection) or `none`
(plain text, refused unless the host is a loopback address: a test server). A refused
login is permanent (retrying the same password cannot help); a refused or dropped
connection is transient (the job is retried).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from typing import Literal

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from bridge.outcome import PermanentError

Security = Literal["tls", "starttls", "none"]
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


def open_imap(server: ServerSettings) -> IMAPClient:
    """A logged-in IMAP connection."""
    context = ssl.create_default_context()
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
    except ssl.SSLError as error:
        raise PermanentError(f"IMAP {server.host}:{server.port}: TLS failed: {error}") from None
    except (TimeoutError, OSError) as error:
        raise ConnectionError(f"IMAP {server.host}:{server.port} unreachable: {error}") from None
    try:
        client.login(server.username, server.password)
    except LoginError:
        client.shutdown()
        raise MailLoginRefused(
            f"IMAP {server.host}: login refused for user {server.username!r}"
        ) from None
    return client
