"""The OAuth clients and API addresses for Gmail and Microsoft Graph accounts, and the
keys that encrypt their refresh tokens at rest.

Like the AI's and the delivery settings these belong to the inbox app: read when an
account's mailbox is opened or connected, never at import; a bad value is a ConfigError
naming the variable. The URLs default to Google's and Microsoft's; tests point them at
local doubles.
"""

from __future__ import annotations

import re

from cryptography.fernet import Fernet
from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from config import ENVIRONMENT_SOURCES, read_settings
from config.environment import EnvironmentSettings

GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GMAIL_API_URL = "https://gmail.googleapis.com/"  # the discovery document's rootUrl
MICROSOFT_LOGIN_URL = "https://login.microsoftonline.com"
MICROSOFT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
# What MICROSOFT_TENANT may be: common, organizations, consumers, a GUID or a domain.
TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


class OAuthSettings(EnvironmentSettings):
    """GOOGLE_*, MICROSOFT_* and TOKEN_ENCRYPTION_KEY*; frozen like AISettings."""

    model_config = SettingsConfigDict(**ENVIRONMENT_SOURCES, frozen=True)

    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_auth_url: str = GOOGLE_AUTH_URL
    google_token_url: str = GOOGLE_TOKEN_URL
    gmail_api_url: str = GMAIL_API_URL

    microsoft_client_id: str | None = None
    # Unset for a public client (an app registered for "mobile and desktop").
    microsoft_client_secret: SecretStr | None = None
    # `common` (any work, school or personal account), `organizations`, or a tenant id.
    microsoft_tenant: str = "common"
    microsoft_login_url: str = MICROSOFT_LOGIN_URL
    microsoft_graph_url: str = MICROSOFT_GRAPH_URL

    # Fernet keys (`jobbridge accounts new-key` prints one). During a rotation the new
    # key goes here and the old one in TOKEN_ENCRYPTION_KEY_PREVIOUS, until
    # `jobbridge accounts rotate-tokens` has re-encrypted every stored token.
    token_encryption_key: SecretStr | None = None
    token_encryption_key_previous: SecretStr | None = None

    @field_validator(
        "google_client_id", "microsoft_client_id", "google_client_secret",
        "microsoft_client_secret", "token_encryption_key", "token_encryption_key_previous",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _without_whitespace(cls, value: object) -> object:
        # A blank one is already unset (EnvironmentSettings).
        return value.strip() if isinstance(value, str) else value

    @field_validator(
        "google_auth_url", "google_token_url", "gmail_api_url", "microsoft_login_url",
        "microsoft_graph_url",
    )  # fmt: skip
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("token_encryption_key", "token_encryption_key_previous")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(value.get_secret_value())
            except ValueError:
                raise ValueError(
                    "must be a Fernet key: 32 bytes in URL-safe base64, 44 characters "
                    "(make one with: jobbridge accounts new-key)"
                ) from None
        return value

    @field_validator("microsoft_login_url")
    @classmethod
    def _https_authority(cls, value: str) -> str:
        if not value.startswith("https://"):  # msal refuses any other authority
            raise ValueError("must be an https:// URL (msal accepts no other authority)")
        return value.rstrip("/")

    @field_validator("microsoft_tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        value = value.strip()
        if not TENANT.fullmatch(value):  # a GUID or a domain; it goes into the login URL
            raise ValueError(
                "must be common, organizations, consumers or a tenant id (a GUID, or a "
                "domain such as contoso.onmicrosoft.com)"
            )
        return value

    @property
    def microsoft_authority(self) -> str:
        return f"{self.microsoft_login_url.rstrip('/')}/{self.microsoft_tenant}"


def load_oauth_settings(**overrides: object) -> OAuthSettings:
    """Read the variables now; ConfigError naming each bad one."""
    return read_settings(OAuthSettings, **overrides)
