"""An IMAP account as the accounts file writes it, as the database stores it, and as the
adapter gets it: `imap:` and `smtp:` entries, each with the name of the environment
variable that holds the password (the password itself is never in the file or the
database).

    - email: ana@example.com
      provider: imap
      imap: {host: mail.example.com, port: 993, security: tls, username: ana, password_env: ANA_MAIL_PASSWORD}
      smtp: {host: mail.example.com, port: 587, security: starttls, username: ana, password_env: ANA_MAIL_PASSWORD}
"""  # noqa: E501 - the example is the documented form, one entry per line

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bridge.outcome import PermanentError
from tasks.mail.imap import ImapProvider
from tasks.mail.imap_session import ServerSettings, is_loopback

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class ServerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253, pattern=r"^[^\s/]+$")
    port: int = Field(ge=1, le=65535)
    security: Literal["tls", "starttls", "none"]
    username: str = Field(min_length=1, max_length=320)
    password_env: str = Field(pattern=ENV_NAME)

    @model_validator(mode="after")
    def _plain_only_on_loopback(self) -> ServerEntry:
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError(
                f"security: none sends the password in plain text; only for a loopback "
                f"host (127.0.0.1, ::1, localhost), not {self.host}"
            )
        return self


def server_settings(entry: dict[str, Any], account: str, role: str) -> ServerSettings:
    """The stored entry with its password read from the environment now."""
    server = ServerEntry.model_validate(entry)
    password = os.environ.get(server.password_env)
    if not password:
        raise PermanentError(
            f"{account}: {server.password_env} is not set; it holds the {role} password"
        )
    return ServerSettings(server.host, server.port, server.security, server.username, password)


def imap_provider(email: str, settings: dict[str, Any]) -> ImapProvider:
    """The adapter for an account stored as `{"imap": {...}, "smtp": {...}}`."""
    if "imap" not in settings:
        raise PermanentError(f"{email}: an imap account needs `imap:` settings")
    imap = server_settings(settings["imap"], email, "IMAP")
    smtp = server_settings(settings["smtp"], email, "SMTP") if settings.get("smtp") else None
    return ImapProvider(imap, smtp, email)
