"""`jobbridge accounts import FILE`: accounts, their mail settings, rules and schedules.

The file (YAML or JSON) is validated whole before anything is written, and every error
names its entry (`accounts[1].rules[0].actions[0].type: ...`). Importing is idempotent:
accounts are matched by email and rules by (account, name), and a rule's conditions
and actions are replaced by the file's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select

from bridge.payload import Text, Timestamp
from bridge.store.db import session_scope
from tasks.mail.imap_accounts import ENV_NAME, ServerEntry
from tasks.mail.maildir import MaildirProvider
from tasks.mail.oauth_accounts import ENCRYPTED_KEY, ENV_KEY
from tasks.models import (
    Category,
    EmailAccount,
    LogicalOperator,
    MailProviderKind,
    PatternKind,
    Rule,
    RuleAction,
    RuleActionType,
    Sender,
    SenderStatus,
    SummaryFrequency,
)

# Bounds that keep every number within its column and every date within a year's reach.
MINUTES_IN_A_YEAR = 366 * 24 * 60
DAYS_IN_TEN_YEARS = 3660
POSITION_LIMIT = 1_000_000


class AccountsFileError(ValueError):
    """The file cannot be imported; the message lists every bad entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionEntry(_Strict):
    type: RuleActionType
    label: Text | None = None
    folder: Text | None = None
    to: Text | None = None
    cc: Text | None = None
    bcc: Text | None = None
    subject: Text | None = None
    content: Text | None = None
    delay_minutes: int | None = Field(default=None, ge=1, le=MINUTES_IN_A_YEAR)

    @model_validator(mode="after")
    def _fields_its_type_needs(self) -> ActionEntry:
        needs = {
            RuleActionType.LABEL: ("label", self.label),
            RuleActionType.MOVE_FOLDER: ("folder", self.folder),
            RuleActionType.SEND_EMAIL: ("to", self.to),
            RuleActionType.FORWARD: ("to", self.to),
        }
        if self.type in needs and not needs[self.type][1]:
            raise ValueError(f"a {self.type.value} action needs `{needs[self.type][0]}`")
        if self.type is RuleActionType.DIGEST and self.delay_minutes:
            raise ValueError("a DIGEST action cannot be delayed")
        return self


class Conditions(_Strict):
    from_: Text | None = Field(default=None, alias="from")
    to: Text | None = None
    subject: Text | None = None
    body: Text | None = None
    category: Text | None = None
    regex: bool = False
    operator: LogicalOperator = LogicalOperator.AND

    @model_validator(mode="after")
    def _patterns_are_usable(self) -> Conditions:
        patterns = [self.from_, self.to, self.subject, self.body]
        if not any(patterns) and not self.category:
            raise ValueError("a rule needs at least one condition")
        if self.regex:
            for pattern in filter(None, patterns):
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ValueError(f"not a valid regex {pattern!r}: {error}") from None
        return self


class RuleEntry(_Strict):
    name: Text = Field(min_length=1, max_length=200)
    enabled: bool = True
    position: int = Field(default=0, ge=-POSITION_LIMIT, le=POSITION_LIMIT)
    conditions: Conditions
    actions: list[ActionEntry] = Field(min_length=1)


class DigestEntry(_Strict):
    every_days: int = Field(ge=1, le=DAYS_IN_TEN_YEARS)
    next_at: Timestamp | None = None

    @field_validator("next_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("add a timezone, e.g. 2026-12-01T08:00:00Z")
        return value


class SenderEntry(_Strict):
    email: Text
    status: SenderStatus = SenderStatus.NONE
    category: Text | None = None


class AccountEntry(_Strict):
    email: Text = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    provider: Literal["maildir", "google", "microsoft", "imap"] = "maildir"
    maildir: Text | None = None
    imap: ServerEntry | None = None  # provider: imap
    smtp: ServerEntry | None = None  # provider: imap; without it, sending fails
    # provider: google or microsoft: the variable holding the refresh token, instead of
    # the encrypted one `jobbridge accounts connect` stores.
    refresh_token_env: str | None = Field(default=None, pattern=ENV_NAME)
    digest: DigestEntry | None = None
    summary: SummaryFrequency | None = None
    rules: list[RuleEntry] = []
    senders: list[SenderEntry] = []

    @field_validator("summary", mode="before")
    @classmethod
    def _summary_case(cls, value: Any) -> Any:
        # Written lower case (`summary: weekly`, as the README shows), stored upper case;
        # a wrong value is answered in the file's own spelling.
        if not isinstance(value, str):
            return value
        allowed = [frequency.value.lower() for frequency in SummaryFrequency]
        if value.strip().lower() not in allowed:
            raise ValueError(f"must be {' or '.join(allowed)}, not {value!r}")
        return value.strip().upper()

    @model_validator(mode="after")
    def _mail_settings(self) -> AccountEntry:
        if self.provider == "maildir" and not self.maildir:
            raise ValueError("a maildir account needs `maildir: <folder>`")
        if self.provider == "imap" and self.imap is None:
            raise ValueError("an imap account needs `imap: {host, port, security, ...}`")
        if self.provider != "imap" and (self.imap or self.smtp):
            raise ValueError("`imap:` and `smtp:` belong to an account with provider: imap")
        if self.refresh_token_env and self.provider not in ("google", "microsoft"):
            raise ValueError("`refresh_token_env` belongs to a google or microsoft account")
        if self.refresh_token_env and self.maildir:
            raise ValueError("a refresh token is for the real mailbox; drop `maildir:` or it")
        names = [rule.name for rule in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique within an account")
        return self


class AccountsFile(_Strict):
    accounts: list[AccountEntry]


@dataclass(frozen=True)
class ImportReport:
    accounts_created: int
    accounts_updated: int
    rules: int


def load(path: Path) -> AccountsFile:
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AccountsFileError(f"{path}: not UTF-8 text, so not {kind}") from None
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise AccountsFileError(f"{path}: not valid {kind}: {_syntax_error(error)}") from None
    if data is None:
        raise AccountsFileError(f"{path}: the file is empty; it needs an `accounts:` list")
    return parse(data, base=path.parent)


def _syntax_error(error: json.JSONDecodeError | yaml.YAMLError) -> str:
    """One line: where, and what the parser expected (PyYAML's own text spans lines)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"{where}: {'; '.join(filter(None, (error.context, error.problem)))}"
    return " ".join(str(error).split())


def parse(data: Any, base: Path) -> AccountsFile:
    try:
        parsed = AccountsFile.model_validate(data)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            if item["type"] == "model_type":
                # pydantic names its model class here: say what the file needs instead
                message = f"must be a mapping of `key: value` entries, not {_kind(item['input'])}"
            lines.append(f"  {where.lstrip('.') or '(top level)'}: {message}")
        raise AccountsFileError("invalid accounts file:\n" + "\n".join(lines)) from None
    for account in parsed.accounts:  # relative Maildir paths are relative to the file
        if account.maildir and not Path(account.maildir).is_absolute():
            account.maildir = str((base / account.maildir).resolve())
    return parsed


def _kind(value: Any) -> str:
    names = {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}
    return names.get(type(value), type(value).__name__)


def apply(parsed: AccountsFile) -> ImportReport:
    """Write the file's accounts in one transaction: all of them, or none."""
    created = updated = rules = 0
    with session_scope() as session:
        for entry in parsed.accounts:
            account = session.scalars(
                select(EmailAccount).where(EmailAccount.email == entry.email)
            ).first()
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
            account.digest_interval_days = entry.digest.every_days if entry.digest else None
            if entry.digest and entry.digest.next_at:
                account.digest_next_at = entry.digest.next_at
            account.summary_frequency = entry.summary
            session.flush()
            for rule_entry in entry.rules:
                _upsert_rule(session, account.id, rule_entry)
                rules += 1
            for sender in entry.senders:
                _upsert_sender(session, account.id, sender)
    for entry in parsed.accounts:
        if entry.maildir:
            MaildirProvider(entry.maildir, entry.email)  # creates the folders
    return ImportReport(created, updated, rules)


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
    address = entry.email.lower()
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
