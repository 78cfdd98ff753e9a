"""`jobbridge accounts import FILE`: writing the file's accounts, their mail settings,
rules and schedules.

The file is read by accounts_file_syntax and checked whole by accounts_file before
anything is written. Importing is idempotent: accounts are matched by email (in any
case) and rules by (account, name), and a rule's conditions and actions are replaced by
the file's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bridge.store.db import session_scope
from tasks.account_lookup import same_address, stored_account
from tasks.accounts_file import (
    AccountEntry,
    AccountsFile,
    Problem,
    RuleEntry,
    SenderEntry,
    invalid_file,
)
from tasks.accounts_file_syntax import load
from tasks.mail.maildir import MaildirProvider
from tasks.mail.oauth_accounts import ENCRYPTED_KEY, ENV_KEY
from tasks.models import (
    Category,
    EmailAccount,
    MailProviderKind,
    PatternKind,
    Rule,
    RuleAction,
    Sender,
)


@dataclass(frozen=True)
class ImportReport:
    accounts_created: int
    accounts_updated: int
    rules: int


def apply(parsed: AccountsFile) -> ImportReport:
    """Write the file's accounts in one transaction: all of them, or none. Their Maildir
    folders are created first, so no account is committed without its folder (should
    the transaction fail, the folders stay, empty, for the next import)."""
    _create_maildirs(parsed.accounts)
    created = updated = rules = 0
    with session_scope() as session:
        for entry in parsed.accounts:
            account = stored_account(session, entry.email)
            if account is None:
                account = EmailAccount(email=entry.email, provider=MailProviderKind(entry.provider))
                session.add(account)
                created += 1
            else:
                updated += 1
            kept = account.provider_settings if account.provider == entry.provider else None
            account.provider = MailProviderKind(entry.provider)
            account.provider_settings = _provider_settings(entry, kept)
            account.connection_error = None  # the file may name a new token; try it again
            # A schedule the entry leaves out is left as it is; `null` turns it off.
            if "digest" in entry.model_fields_set:
                account.digest_interval_days = entry.digest.every_days if entry.digest else None
                if entry.digest and entry.digest.next_at:
                    account.digest_next_at = entry.digest.next_at
            if "summary" in entry.model_fields_set:
                account.summary_frequency = entry.summary
            session.flush()
            for rule_entry in entry.rules:
                _upsert_rule(session, account.id, rule_entry)
                rules += 1
            for sender in entry.senders:
                _upsert_sender(session, account.id, sender)
    return ImportReport(created, updated, rules)


def _create_maildirs(entries: list[AccountEntry]) -> None:
    """Create every entry's Maildir, or raise naming each that failed. parse() checked
    them all, so this fails only if the disk changed since; a folder made before the
    failure stays, empty, and the next import uses it."""
    problems = []
    for index, entry in enumerate(entries):
        if entry.maildir:
            try:
                MaildirProvider(entry.maildir, entry.email)
            except OSError as error:
                why = error.strerror or str(error)
                problems.append(
                    Problem(f"accounts[{index}].maildir", f"cannot use {entry.maildir}: {why}")
                )
    if problems:
        raise invalid_file(problems, headline="nothing imported")


def _provider_settings(entry: AccountEntry, stored: dict[str, Any] | None) -> dict[str, Any]:
    """What the adapter needs, stored with the account: a path, servers (with the names
    of their password variables, never the passwords), or where the refresh token is.
    A token `accounts connect` stored is kept while the file names no other source."""
    if entry.imap is not None:
        servers = {"imap": entry.imap, "smtp": entry.smtp}
        return {role: server.model_dump() for role, server in servers.items() if server}
    if entry.maildir:
        return {"path": entry.maildir}
    if entry.refresh_token_env:
        return {ENV_KEY: entry.refresh_token_env}
    if entry.provider in ("google", "microsoft") and stored and stored.get(ENCRYPTED_KEY):
        return {ENCRYPTED_KEY: stored[ENCRYPTED_KEY]}
    return {}


def _upsert_rule(session: Any, account_id: str, entry: RuleEntry) -> None:
    rule = session.scalars(
        select(Rule).where(Rule.email_account_id == account_id, Rule.name == entry.name)
    ).first()
    if rule is None:
        rule = Rule(email_account_id=account_id, name=entry.name)
        session.add(rule)
    conditions = entry.conditions
    rule.enabled, rule.position = entry.enabled, entry.position
    rule.from_pattern, rule.to_pattern = conditions.from_, conditions.to
    rule.subject_pattern, rule.body_pattern = conditions.subject, conditions.body
    rule.sender_category = conditions.category
    rule.pattern_kind = PatternKind.REGEX if conditions.regex else PatternKind.CONTAINS
    rule.operator = conditions.operator
    rule.actions = [
        RuleAction(
            position=position,
            type=action.type,
            label=action.label,
            folder_name=action.folder,
            to=action.to,
            cc=action.cc,
            bcc=action.bcc,
            subject=action.subject,
            content=action.content,
            delay_minutes=action.delay_minutes,
        )
        for position, action in enumerate(entry.actions)
    ]


def _upsert_sender(session: Any, account_id: str, entry: SenderEntry) -> None:
    category_id = None
    if entry.category:
        category = session.scalars(
            select(Category).where(
                Category.email_account_id == account_id, Category.name == entry.category
            )
        ).first()
        if category is None:
            category = Category(email_account_id=account_id, name=entry.category)
            session.add(category)
            session.flush()
        category_id = category.id
    address = same_address(entry.email)
    sender = session.scalars(
        select(Sender).where(Sender.email_account_id == account_id, Sender.email == address)
    ).first()
    if sender is None:
        sender = Sender(email_account_id=account_id, email=address)
        session.add(sender)
    sender.status = entry.status
    if category_id:
        sender.category_id = category_id


def import_file(path: Path) -> ImportReport:
    return apply(load(path))
