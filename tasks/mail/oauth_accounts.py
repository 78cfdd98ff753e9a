"""A Google or Microsoft account's OAuth grant: where its refresh token is kept and how
the adapters get it.

The refresh token is either in an environment variable the accounts file names
(`refresh_token_env`), or stored encrypted by `jobbridge accounts connect`; the database
never holds it in clear. The OAuth client (id, secret) comes from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bridge.outcome import PermanentError
from tasks.mail.oauth_grant import OAuthGrant
from tasks.mail.oauth_settings import OAuthSettings
from tasks.mail.token_vault import decrypt, encrypt
from tasks.models import MailProviderKind

ENV_KEY = "refresh_token_env"  # provider_settings: the variable holding the token
ENCRYPTED_KEY = "refresh_token_encrypted"  # provider_settings: Fernet ciphertext
OAUTH_KINDS = (MailProviderKind.GOOGLE, MailProviderKind.MICROSOFT)


def client_of(kind: MailProviderKind, settings: OAuthSettings) -> tuple[str, str | None]:
    """The OAuth client's id and secret; PermanentError naming the missing variable."""
    if kind is MailProviderKind.GOOGLE:
        client_id, secret, prefix = (
            settings.google_client_id,
            settings.google_client_secret,
            "GOOGLE",
        )
        if secret is None and client_id:  # Google's installed-app clients have one too
            raise PermanentError("GOOGLE_CLIENT_SECRET is not set; Google's token server needs it")
    else:
        client_id, secret, prefix = (
            settings.microsoft_client_id,
            settings.microsoft_client_secret,
            "MICROSOFT",
        )
    if not client_id:
        raise PermanentError(
            f"{prefix}_CLIENT_ID is not set; it names the OAuth app that {kind.value} "
            "accounts are connected through (see docs/MAILBOXES.md)"
        )
    return client_id, secret.get_secret_value() if secret is not None else None


def grant_for(
    email: str,
    kind: MailProviderKind,
    stored: dict[str, Any],
    settings: OAuthSettings,
    on_refused: Callable[[str], None] | None = None,
    on_stored_token_rotated: Callable[[str], None] | None = None,
) -> OAuthGrant:
    """`on_stored_token_rotated` is called with a rotated refresh token only when the
    account's token is one we store (encrypted): a variable's value is not ours to change."""
    client_id, secret = client_of(kind, settings)
    return OAuthGrant(
        email,
        client_id,
        secret,
        _refresh_token(email, kind, stored, settings),
        on_refused,
        on_stored_token_rotated if stored.get(ENCRYPTED_KEY) and not stored.get(ENV_KEY) else None,
    )


def _refresh_token(
    email: str, kind: MailProviderKind, stored: dict[str, Any], settings: OAuthSettings
) -> str:
    if stored.get(ENV_KEY):
        token = os.environ.get(stored[ENV_KEY], "").strip()
        if not token:
            raise PermanentError(
                f"{email}: {stored[ENV_KEY]} is not set; it holds the refresh token"
            )
        return token
    if stored.get(ENCRYPTED_KEY):
        return decrypt(stored[ENCRYPTED_KEY], email, settings)
    raise PermanentError(
        f"{email}: not connected yet; run: jobbridge accounts connect {kind.value} {email}"
    )


def stored_token(refresh_token: str, settings: OAuthSettings) -> dict[str, Any]:
    """The provider_settings of a connected account: its token, encrypted."""
    return {ENCRYPTED_KEY: encrypt(refresh_token, settings)}
