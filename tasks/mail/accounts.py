"""The mail provider behind an email account."""

from __future__ import annotations

from bridge.outcome import PermanentError
from tasks.account_connections import record_refused, store_rotated
from tasks.mail.gmail import GmailProvider
from tasks.mail.graph import GraphProvider
from tasks.mail.imap_accounts import imap_provider
from tasks.mail.maildir import MaildirProvider
from tasks.mail.oauth_accounts import grant_for
from tasks.mail.oauth_settings import load_oauth_settings
from tasks.mail.port import MailProvider
from tasks.models import EmailAccount, MailProviderKind


def mail_provider_for(account: EmailAccount) -> MailProvider:
    if account.provider is MailProviderKind.IMAP:
        return imap_provider(account.email, account.provider_settings)
    path = account.provider_settings.get("path")
    # A Google or Microsoft account whose mail is a local Maildir (tests, demos) uses the
    # Maildir adapter; which clean job handles it (label-based or Outlook) still follows
    # the account's kind.
    if path:
        return MaildirProvider(path, account.email)
    if account.provider is MailProviderKind.MAILDIR:
        raise PermanentError(f"account {account.id} has no Maildir path in provider_settings")
    if account.connection_error:
        # The provider refused the token before: only `accounts connect` can fix that.
        raise PermanentError(account.connection_error)
    settings = load_oauth_settings()
    account_id = account.id
    grant = grant_for(
        account.email,
        account.provider,
        account.provider_settings,
        settings,
        on_refused=lambda reason: record_refused(account_id, reason),
        on_stored_token_rotated=lambda token: store_rotated(account_id, token, settings),
    )
    if account.provider is MailProviderKind.GOOGLE:
        return GmailProvider(grant, settings)
    return GraphProvider(grant, settings)
