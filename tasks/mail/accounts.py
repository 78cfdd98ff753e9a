"""The mail provider behind an email account."""

from __future__ import annotations

from bridge.outcome import PermanentError
from tasks.mail.imap_accounts import imap_provider
from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import MailProvider
from tasks.models import EmailAccount, MailProviderKind


def mail_provider_for(account: EmailAccount) -> MailProvider:
    if account.provider is MailProviderKind.IMAP:
        return imap_provider(account.email, account.provider_settings)
    path = account.provider_settings.get("path")
    # A Google or Microsoft account whose mail is a local Maildir (tests, demos) uses the
    # Maildir adapter until that provider has an adapter of its own; which clean job
    # handles it (label-based or Outlook) still follows the account's kind.
    if path:
        return MaildirProvider(path, account.email)
    if account.provider is MailProviderKind.MAILDIR:
        raise PermanentError(f"account {account.id} has no Maildir path in provider_settings")
    raise PermanentError(
        f"account {account.id}: the {account.provider.value} mail provider has no adapter yet"
    )
