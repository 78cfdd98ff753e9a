"""The mail provider behind an email account."""

from __future__ import annotations

from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import MailProvider
from tasks.models import EmailAccount, MailProviderKind
from tasks.outcome import PermanentError


def mail_provider_for(account: EmailAccount) -> MailProvider:
    if account.provider is MailProviderKind.MAILDIR:
        path = account.provider_settings.get("path")
        if not path:
            raise PermanentError(f"account {account.id} has no Maildir path in provider_settings")
        return MaildirProvider(path, account.email)
    raise PermanentError(
        f"account {account.id}: the {account.provider.value} mail provider has no adapter yet"
    )
