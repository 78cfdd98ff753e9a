"""Looking up an email account and its mail provider, as every job does first."""

from __future__ import annotations

from bridge.outcome import PermanentError
from bridge.store.db import read_scope
from tasks.mail.accounts import mail_provider_for
from tasks.mail.port import MailProvider
from tasks.models import EmailAccount


def account_or_fail(account_id: str) -> EmailAccount:
    """The account, or a permanent failure: retrying cannot make an account exist."""
    with read_scope() as session:
        account = session.get(EmailAccount, account_id)
    if account is None:
        raise PermanentError(f"unknown email account {account_id}")
    return account


def mailbox_of(account_id: str) -> tuple[EmailAccount, MailProvider]:
    account = account_or_fail(account_id)
    return account, mail_provider_for(account)
