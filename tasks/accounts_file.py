"""The accounts file's shape and its checks, for `jobbridge accounts import FILE`.

The entries a file (YAML or JSON, read by accounts_file_syntax) may hold: accounts,
their mail settings, rules, senders and schedules. parse() checks the file whole before
anything is written, and every error names its entry (`accounts[1].rules[0].actions[0].type:
...`): its shape, an account or a sender given twice, a Maildir that cannot be a folder.

`jobbridge accounts add` checks its arguments with `maildir_account_problems`, the
same checks an entry of the file gets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.payload import Address, ExternalId, Text, Timestamp
from bridge.store.columns import ADDRESS_LENGTH
from tasks.account_lookup import same_address
from tasks.mail.composing import recipients_problem
from tasks.mail.imap_accounts import ENV_NAME, ServerEntry
from tasks.mail.maildir_files import folder_name_problem
from tasks.models import LogicalOperator, RuleActionType, SenderStatus, SummaryFrequency
from tasks.models.senders import CATEGORY_LENGTH

# Bounds that keep every number within its column and every date within a year's reach.
MINUTES_IN_A_YEAR = 366 * 24 * 60
DAYS_IN_TEN_YEARS = 3660
POSITION_LIMIT = 1_000_000
# A condition's pattern: long enough for any address list or subject, not a megabyte
# tested against every message.
PATTERN_MAX = 2_000

# What an account's address must look like: something, one @, something, no spaces.
ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")
# The folders a Maildir keeps its messages in (mailbox.Maildir makes them with its root).
MAILDIR_SUBFOLDERS = ("tmp", "new", "cur")
# Problems listed when a file is refused: enough to fix in one go, not a screen per entry.
PROBLEMS_SHOWN = 50


def _an_address(value: str) -> str:
    if not ADDRESS.match(value):
        raise ValueError(f"must be an address like name@example.com, not {value!r}")
    if len(same_address(value)) > ADDRESS_LENGTH:  # lower case can be longer (İ: 2)
        raise ValueError(f"is over {ADDRESS_LENGTH} characters once in lower case")
    return value


# An account's or a sender's address, as its column holds it.
AccountAddress = Annotated[Address, AfterValidator(_an_address)]
Category = Annotated[Text, Field(max_length=CATEGORY_LENGTH)]


class AccountsFileError(ValueError):
    """The file cannot be imported; the message lists every bad entry."""


@dataclass(frozen=True)
class Problem:
    """One bad entry: where it is (`accounts[1].maildir`, or a line) and what is wrong."""

    where: str
    message: str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionEntry(_Strict):
    type: RuleActionType
    label: ExternalId | None = None
    folder: ExternalId | None = None
    to: Text | None = None
    cc: Text | None = None
    bcc: Text | None = None
    subject: Text | None = None
    content: Text | None = None
    delay_minutes: StrictInt | None = Field(default=None, ge=1, le=MINUTES_IN_A_YEAR)

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
        for name in ("to", "cc", "bcc"):
            field = getattr(self, name)
            if field and (problem := recipients_problem(field)):
                raise ValueError(f"`{name}` {problem}")
        if self.type is RuleActionType.DIGEST and self.delay_minutes:
            raise ValueError("a DIGEST action cannot be delayed")
        return self


Pattern = Annotated[Text, Field(max_length=PATTERN_MAX)]


class Conditions(_Strict):
    from_: Pattern | None = Field(default=None, alias="from")
    to: Pattern | None = None
    subject: Pattern | None = None
    body: Pattern | None = None
    category: Category | None = None
    regex: StrictBool = False
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
    enabled: StrictBool = True
    position: StrictInt = Field(default=0, ge=-POSITION_LIMIT, le=POSITION_LIMIT)
    conditions: Conditions
    actions: list[ActionEntry] = Field(min_length=1)


class DigestEntry(_Strict):
    every_days: StrictInt = Field(ge=1, le=DAYS_IN_TEN_YEARS)  # not `true`, not "7"
    next_at: Timestamp | None = None

    @field_validator("next_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("add a timezone, e.g. 2026-12-01T08:00:00Z")
        return value


class SenderEntry(_Strict):
    email: AccountAddress  # stored as same_address(email)
    status: SenderStatus = SenderStatus.NONE
    category: Category | None = None


class AccountEntry(_Strict):
    email: AccountAddress
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
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            listed = ", ".join(repr(name) for name in repeated)
            raise ValueError(f"rule names must be unique within an account: {listed} repeated")
        for rule in self.rules if self.maildir else ():  # its mail is that Maildir
            for action in rule.actions:
                if action.folder and (problem := folder_name_problem(action.folder)):
                    raise ValueError(f"rule {rule.name!r}: folder {action.folder!r}: {problem}")
        return self


class AccountsFile(_Strict):
    accounts: list[AccountEntry]


def parse(data: Any, base: Path) -> AccountsFile:
    """The file's accounts, or AccountsFileError naming every bad entry: every entry of
    the wrong shape and every account or sender given twice, else every Maildir that
    cannot be a folder. Nothing is created: the folders are checked only."""
    try:
        parsed = AccountsFile.model_validate(data)
    except ValidationError as error:
        problems = _shape_problems(error) + _repeats_as_written(data)
        raise invalid_file(_in_entry_order(problems)) from None
    for account in parsed.accounts:  # relative Maildir paths are relative to the file
        if account.maildir and not Path(account.maildir).is_absolute():
            account.maildir = str((base / account.maildir).resolve())
    addresses = [account.email for account in parsed.accounts]
    problems = list(_repeated_addresses(addresses, ("accounts",)))
    for index, account in enumerate(parsed.accounts):
        senders = [sender.email for sender in account.senders]
        problems += _repeated_addresses(senders, ("accounts", index, "senders"))
        problems += _maildir_problems(account, ("accounts", index))
    if problems:
        raise invalid_file(_in_entry_order(problems))
    return parsed


def maildir_account_problems(email: str, maildir: Path) -> list[Problem]:
    """What is wrong with `jobbridge accounts add EMAIL --maildir PATH`, as the accounts
    file would say it of an entry `{email: EMAIL, maildir: PATH}` (`where` is `email` or
    `maildir`); nothing is created."""
    try:
        entry = AccountEntry.model_validate({"email": email, "maildir": str(maildir.resolve())})
    except ValidationError as error:
        return _shape_problems(error)
    return list(_maildir_problems(entry, ()))


def invalid_file(
    problems: list[Problem], headline: str = "invalid accounts file"
) -> AccountsFileError:
    """The error refusing the file, listing each problem on a line under `headline`
    (also used for a key given twice, and for a Maildir that failed at import); past
    PROBLEMS_SHOWN of them, how many more there are."""
    shown = [f"  {problem.where}: {problem.message}" for problem in problems[:PROBLEMS_SHOWN]]
    if len(problems) > PROBLEMS_SHOWN:
        shown.append(f"  ... and {len(problems) - PROBLEMS_SHOWN} more")
    lines = "\n".join(shown)
    return AccountsFileError(f"{headline}:\n{lines}")


def where_in_file(loc: tuple[str | int, ...]) -> str:
    """`accounts[1].rules[0]`: a location as the file's reader would write it."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return where.lstrip(".") or "(top level)"


def _in_entry_order(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda problem: _entry_order(problem.where))


def _entry_order(where: str) -> list[int]:
    """The indexes in `where` (`accounts[2].senders[1]`: [2, 1]), by which problems
    sort in the order of the entries they name."""
    return [int(number) for number in re.findall(r"\[(\d+)\]", where)]


def _shape_problems(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "model_type":
            # pydantic names its model class here: say what the file needs instead
            message = f"must be a mapping of `key: value` entries, not {_kind(item['input'])}"
        problems.append(Problem(where_in_file(item["loc"]), message))
    return problems


def _kind(value: Any) -> str:
    names = {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}
    return names.get(type(value), type(value).__name__)


def _repeats_as_written(data: Any) -> list[Problem]:
    """Accounts and senders given twice, read from the file as written: told with the
    entries of the wrong shape, in one pass (an entry without an address is skipped)."""
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, list):
        return []
    problems = list(_repeated_addresses(_addresses(accounts), ("accounts",)))
    for index, entry in enumerate(accounts):
        senders = entry.get("senders") if isinstance(entry, dict) else None
        if isinstance(senders, list):
            where = ("accounts", index, "senders")
            problems += _repeated_addresses(_addresses(senders), where)
    return problems


def _addresses(entries: list[Any]) -> list[str | None]:
    return [
        entry["email"] if isinstance(entry, dict) and isinstance(entry.get("email"), str) else None
        for entry in entries
    ]


def _repeated_addresses(
    addresses: list[str] | list[str | None], loc: tuple[str | int, ...]
) -> Iterator[Problem]:
    """Each entry (of the list at `loc`) whose address an earlier one has, in any case,
    naming that one: both would be written to one row, and the last would win."""
    first: dict[str, int] = {}
    for index, address in enumerate(addresses):
        if address is None:
            continue
        earlier = first.setdefault(same_address(address), index)
        if earlier != index:
            yield Problem(
                where_in_file((*loc, index, "email")),
                f"same address as {where_in_file((*loc, earlier))}",
            )


def _maildir_problems(entry: AccountEntry, loc: tuple[str | int, ...]) -> Iterator[Problem]:
    if entry.maildir:
        why = _why_no_maildir(Path(entry.maildir))
        if why:
            yield Problem(where_in_file((*loc, "maildir")), f"cannot use {entry.maildir}: {why}")


def in_or_above(filename: object, maildir: Path) -> bool:
    """Whether an error's file is the Maildir, in it, or one of the folders above it."""
    if not isinstance(filename, str):
        return False
    path, folder = Path(filename).resolve(), maildir.resolve()
    return path == folder or folder in path.parents or path in folder.parents


def _why_no_maildir(path: Path) -> str | None:
    """Why `path` cannot hold a Maildir, or None, found without creating anything: it,
    and the nearest of its parents that exists, must be directories this process may
    write in, and whatever Maildir folders it already has must be directories too."""
    try:
        existing = next(folder for folder in (path, *path.parents) if folder.exists())
    except OSError as error:  # e.g. no permission to look inside a parent
        return error.strerror or str(error)
    name = "" if existing == path else f"{existing} is "
    if not existing.is_dir():
        return f"{name}not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{name}not writable by this user"
    for sub in MAILDIR_SUBFOLDERS:
        if (path / sub).exists() and not (path / sub).is_dir():
            return f"{path / sub} is not a directory"
    return None
