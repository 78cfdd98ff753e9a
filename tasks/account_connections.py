"""Connected Google and Microsoft accounts in the database: storing a new refresh token
(encrypted), recording that the provider refused one, and re-encrypting every stored
token with the current key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from bridge.outcome import PermanentError
from bridge.store.db import session_scope
from tasks.account_lookup import stored_account
from tasks.mail.oauth_accounts import ENCRYPTED_KEY, OAUTH_KINDS, stored_token
from tasks.mail.oauth_settings import OAuthSettings
from tasks.mail.token_vault import reencrypt
from tasks.models import EmailAccount, MailProviderKind


def check_can_connect(kind: MailProviderKind, email: str) -> None:
    """Before the person signs in: the database is there, and the account (if it exists)
    is of this kind; PermanentError otherwise, so no token is issued only to be lost."""
    with session_scope() as session:
        account = stored_account(session, email)
    if account is not None and account.provider is not kind:
        raise PermanentError(
            f"{email} is a {account.provider.value} account, not {kind.value}; "
            "change its provider in the accounts file first"
        )


def save_connection(
    kind: MailProviderKind, email: str, refresh_token: str, settings: OAuthSettings
) -> tuple[EmailAccount, bool]:
    """Store the account's token (creating the account if it is new); True if created.

    Connecting replaces whatever mailbox settings the account had, and clears a recorded
    "reconnect this account"."""
    provider_settings = stored_token(refresh_token, settings)
    with session_scope() as session:
        account = stored_account(session, email)
        created = account is None
        if account is None:
            account = EmailAccount(email=email, provider=kind)
            session.add(account)
        elif account.provider is not kind:
            raise PermanentError(
                f"{email} is a {account.provider.value} account, not {kind.value}; "
                "change its provider in the accounts file first"
            )
        account.provider_settings = provider_settings
        account.connection_error = None
    return account, created


def record_refused(account_id: str, reason: str) -> None:
    """Mark the account as needing a reconnect: its jobs stop before calling the
    provider, and `accounts check` says why."""
    with session_scope() as session:
        session.execute(
            update(EmailAccount)
            .where(EmailAccount.id == account_id)
            .values(connection_error=reason[:2000])
        )


def store_rotated(account_id: str, refresh_token: str, settings: OAuthSettings) -> None:
    """Keep the refresh token the provider rotated to, encrypted, in place of the old."""
    with session_scope() as session:
        account = session.get(EmailAccount, account_id)
        if account is not None and account.provider_settings.get(ENCRYPTED_KEY):
            account.provider_settings = stored_token(refresh_token, settings)


@dataclass(frozen=True)
class Rotation:
    rotated: int
    failed: list[str]  # one line per account whose token decrypts with neither key


def rotate_tokens(settings: OAuthSettings) -> Rotation:
    """Re-encrypt every stored refresh token with TOKEN_ENCRYPTION_KEY."""
    rotated, failed = 0, []
    with session_scope() as session:
        accounts = session.scalars(
            select(EmailAccount).where(EmailAccount.provider.in_(OAUTH_KINDS))
        ).all()
        for account in accounts:
            ciphertext = account.provider_settings.get(ENCRYPTED_KEY)
            if not ciphertext:
                continue
            try:
                renewed = reencrypt(ciphertext, account.email, settings)
            except PermanentError as error:
                failed.append(str(error))
                continue
            account.provider_settings = {**account.provider_settings, ENCRYPTED_KEY: renewed}
            rotated += 1
    return Rotation(rotated, failed)
