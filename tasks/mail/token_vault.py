"""Refresh tokens encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256, from
`cryptography`), keyed by TOKEN_ENCRYPTION_KEY.

During a key rotation TOKEN_ENCRYPTION_KEY holds the new key and
TOKEN_ENCRYPTION_KEY_PREVIOUS the old one: tokens encrypted with either are read, new
ones are written with the new key, and `jobbridge accounts rotate-tokens` re-encrypts the
stored ones, after which the old key can go.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge.outcome import PermanentError
from tasks.mail.oauth_settings import OAuthSettings


class TokenKeyMissing(PermanentError):
    """No TOKEN_ENCRYPTION_KEY: stored tokens can neither be written nor read."""

    @classmethod
    def for_rotation(cls) -> TokenKeyMissing:
        return cls(
            "TOKEN_ENCRYPTION_KEY is not set; set the new key there and the old one in "
            "TOKEN_ENCRYPTION_KEY_PREVIOUS, then rotate"
        )


def new_key() -> str:
    return Fernet.generate_key().decode()


def _vault(settings: OAuthSettings) -> MultiFernet:
    keys = [settings.token_encryption_key, settings.token_encryption_key_previous]
    if keys[0] is None:
        raise TokenKeyMissing(
            "TOKEN_ENCRYPTION_KEY is not set; it encrypts the stored refresh tokens "
            "(make one with: jobbridge accounts new-key)"
        )
    return MultiFernet([Fernet(key.get_secret_value()) for key in keys if key is not None])


def encrypt(token: str, settings: OAuthSettings) -> str:
    return _vault(settings).encrypt(token.encode()).decode()


def decrypt(ciphertext: str, account: str, settings: OAuthSettings) -> str:
    try:
        return _vault(settings).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise PermanentError(
            f"{account}: the stored refresh token does not decrypt with TOKEN_ENCRYPTION_KEY "
            "(nor TOKEN_ENCRYPTION_KEY_PREVIOUS); set the key it was stored with, or connect "
            "the account again"
        ) from None


def reencrypt(ciphertext: str, account: str, settings: OAuthSettings) -> str:
    """The token encrypted with the current key (a no-op in effect if it already is)."""
    try:
        return _vault(settings).rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise PermanentError(
            f"{account}: the stored refresh token decrypts with neither key; connect it again"
        ) from None
