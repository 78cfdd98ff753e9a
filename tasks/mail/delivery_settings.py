"""How digests and summaries reach the user: the RESEND_* and SMTP_* variables.

Resend when RESEND_API_KEY is set (it wins over SMTP_URL), else the SMTP server of
SMTP_URL, else the account's own mailbox, as without any of them. Like the AI's settings
(tasks/ai/settings.py) they belong to the inbox app, and are read when a digest or a
summary is sent, never at import; a bad value is a ConfigError naming the variable.

SMTP_URL is `smtp://user:password@host:587` (STARTTLS), `smtps://user:password@host:465`
(TLS from the first byte) or, for a test server on this machine only, plain text:
`smtp://127.0.0.1:2525` (the default for a loopback host) or `?security=none`. The
password is never printed: the field is a SecretStr, and no error quotes the URL.
"""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from config import ENVIRONMENT_SOURCES, read_settings
from config.environment import EnvironmentSettings
from tasks.mail.imap_session import Security, ServerSettings, is_loopback

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}  # submission with STARTTLS; implicit TLS
_SECURITIES = ("tls", "starttls", "none")


class Transport(StrEnum):
    RESEND = "resend"
    SMTP = "smtp"
    MAILBOX = "mailbox"  # the account's own mailbox, sent by its MailProvider


class DeliverySettings(EnvironmentSettings):
    """RESEND_* and SMTP_* variables; frozen like AISettings."""

    # Read like config's Settings: the environment first, then .env in the working folder.
    model_config = SettingsConfigDict(**ENVIRONMENT_SOURCES, frozen=True)

    resend_api_key: SecretStr | None = None
    # The address Resend sends from: Resend sends only from a domain verified in it.
    resend_from: str | None = None
    smtp_url: SecretStr | None = None
    # The address the SMTP server sends from; unset, the account's own address.
    smtp_from: str | None = None

    @field_validator("resend_api_key", "smtp_url")
    @classmethod
    def _secret_without_whitespace(cls, value: SecretStr | None) -> SecretStr | None:
        # A blank one is already unset (EnvironmentSettings).
        return None if value is None else SecretStr(value.get_secret_value().strip())

    @field_validator("resend_from", "smtp_from")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        local, at, domain = value.rpartition("@")
        if not at or not local or "." not in domain or any(c in value for c in ' <>",;'):
            raise ValueError(
                "must be a plain address such as digest@mail.example.com (no display "
                "name: each email sets its own)"
            )
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_smtp_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _each_sender_with_its_server(self) -> DeliverySettings:
        if self.resend_api_key is not None and self.resend_from is None:
            raise ValueError(
                "RESEND_API_KEY is set but RESEND_FROM is not: name the address to send "
                "from, on a domain verified in Resend (e.g. digest@mail.example.com)"
            )
        if self.resend_from is not None and self.resend_api_key is None:
            raise ValueError(
                "RESEND_FROM is set but RESEND_API_KEY is not: set the key to send "
                "through Resend, or unset RESEND_FROM"
            )
        if self.smtp_from is not None and self.smtp_url is None:
            raise ValueError(
                "SMTP_FROM is set but SMTP_URL is not: name the SMTP server to send "
                "through, or unset SMTP_FROM"
            )
        return self

    @property
    def transport(self) -> Transport:
        """Which way digests go: Resend wins over SMTP, SMTP over the own mailbox."""
        if self.resend_api_key is not None:
            return Transport.RESEND
        if self.smtp_url is not None:
            return Transport.SMTP
        return Transport.MAILBOX

    def smtp_server(self) -> ServerSettings:
        """SMTP_URL's server; only when the transport is SMTP."""
        if self.smtp_url is None:
            raise ValueError("SMTP_URL is not set")
        return parse_smtp_url(self.smtp_url.get_secret_value())


def parse_smtp_url(url: str) -> ServerSettings:
    """The server an SMTP_URL names; ValueError saying what is wrong, never quoting the
    URL (it may hold the password)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            "must start with smtp:// (STARTTLS) or smtps:// (TLS), e.g. "
            "smtp://user:password@mail.example.com:587"
        )
    host = parts.hostname
    if not host:
        raise ValueError("names no host, e.g. smtp://user:password@mail.example.com:587")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("takes no path: smtp://user:password@host:port?security=...")
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if bool(username) != bool(password):
        raise ValueError(
            "needs both a user and a password (smtp://user:password@host), or neither for "
            "a server that asks for no login; write @ in a user name as %40"
        )
    return ServerSettings(host, port, _security(scheme, host, parts.query), username, password)


def _security(scheme: str, host: str, query: str) -> Security:
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - {"security"})
    if unknown:
        raise ValueError(f"takes only the option security, not {', '.join(unknown)}")
    given = options.get("security", [""])[-1].lower()
    if given and given not in _SECURITIES:
        raise ValueError(f"security must be starttls or none (smtp://) or tls, not {given!r}")
    if scheme == "smtps":
        if given not in ("", "tls"):
            raise ValueError("smtps:// is TLS from the first byte: drop ?security, or use smtp://")
        return "tls"
    if given == "tls":
        raise ValueError("security=tls is written smtps://host:465")
    if given == "starttls":
        return "starttls"
    # Plain text is refused for any host but a loopback one, by ServerSettings' own rule;
    # a server on this machine is a test server, spoken to in plain text unless told.
    return "none" if given == "none" or is_loopback(host) else "starttls"


def load_delivery_settings(**overrides: object) -> DeliverySettings:
    """Read the RESEND_* and SMTP_* variables now; ConfigError naming each bad one."""
    return read_settings(DeliverySettings, **overrides)
