"""`jobbridge accounts import` and `jobbridge demo`: validated, idempotent, all or nothing.

Errors are read as whole lines of stderr: they are printed plainly, never wrapped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.store.db import session_scope
from tasks.accounts_file import AccountsFileError, parse
from tasks.accounts_import import apply
from tasks.models import (
    EmailAccount,
    PatternKind,
    Rule,
    RuleAction,
    RuleActionType,
    Sender,
    SenderStatus,
    SummaryFrequency,
)

runner = CliRunner()

GOOD = """
accounts:
  - email: ana@example.test
    maildir: mail/ana
    digest: {every_days: 7, next_at: 2026-12-01T08:00:00Z}
    summary: weekly
    senders:
      - {email: Spam@Deals.example, status: IGNORED}
      - {email: shop@example.test, category: Receipt}
    rules:
      - name: Newsletters
        conditions: {from: "newsletter|digest", regex: true}
        actions: [{type: DIGEST}, {type: ARCHIVE}]
      - name: Later
        conditions: {subject: report}
        actions: [{type: ARCHIVE, delay_minutes: 30}]
"""


def jobbridge(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def count(model: Any) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# The account of GOOD, and nothing else.
BARE = "accounts:\n  - {email: ana@example.test, maildir: mail/ana}\n"


def write(tmp_path: Path, text: str, name: str = "accounts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_creates_accounts_rules_senders_and_schedules(tmp_path: Path) -> None:
    result = jobbridge("accounts", "import", str(write(tmp_path, GOOD)))
    assert result.exit_code == 0, result.output
    assert "1 created, 0 updated; rules: 2" in result.stdout
    with session_scope() as session:
        account = session.scalars(select(EmailAccount)).one()
        rules = {r.name: r for r in session.scalars(select(Rule))}
        senders = {s.email: s for s in session.scalars(select(Sender))}
        actions = list(session.scalars(select(RuleAction).order_by(RuleAction.position)))
    assert account.provider_settings == {"path": str((tmp_path / "mail/ana").resolve())}
    assert (account.digest_interval_days, account.summary_frequency) == (7, SummaryFrequency.WEEKLY)
    assert rules["Newsletters"].pattern_kind is PatternKind.REGEX
    assert {a.type for a in actions} == {RuleActionType.DIGEST, RuleActionType.ARCHIVE}
    assert senders["spam@deals.example"].status is SenderStatus.IGNORED
    assert senders["shop@example.test"].category_id is not None
    assert (tmp_path / "mail/ana/cur").is_dir()


def test_importing_again_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    jobbridge("accounts", "import", str(path))
    before = [count(m) for m in (EmailAccount, Rule, RuleAction, Sender)]
    result = jobbridge("accounts", "import", str(path))
    assert "0 created, 1 updated" in result.stdout
    assert [count(m) for m in (EmailAccount, Rule, RuleAction, Sender)] == before


def schedules() -> tuple[int | None, SummaryFrequency | None]:
    with session_scope() as session:
        account = session.scalars(select(EmailAccount)).one()
        return account.digest_interval_days, account.summary_frequency


def test_importing_again_without_the_schedules_keeps_them(tmp_path: Path) -> None:
    jobbridge("accounts", "import", str(write(tmp_path, GOOD)))

    result = jobbridge("accounts", "import", str(write(tmp_path, BARE, "bare.yaml")))

    assert result.exit_code == 0, result.output
    assert schedules() == (7, SummaryFrequency.WEEKLY)


def test_importing_again_with_null_schedules_turns_them_off(tmp_path: Path) -> None:
    jobbridge("accounts", "import", str(write(tmp_path, GOOD)))
    off = BARE.replace("maildir: mail/ana}", "maildir: mail/ana, digest: null, summary: null}")

    result = jobbridge("accounts", "import", str(write(tmp_path, off, "off.yaml")))

    assert result.exit_code == 0, result.output
    assert schedules() == (None, None)


def test_a_changed_rule_replaces_its_conditions_and_actions(tmp_path: Path) -> None:
    jobbridge("accounts", "import", str(write(tmp_path, GOOD)))
    changed = GOOD.replace("conditions: {subject: report}", "conditions: {subject: invoice}")
    changed = changed.replace("{type: ARCHIVE, delay_minutes: 30}", "{type: MARK_READ}")
    jobbridge("accounts", "import", str(write(tmp_path, changed)))
    with session_scope() as session:
        later = session.scalars(select(Rule).where(Rule.name == "Later")).one()
        assert later.subject_pattern == "invoice"
        assert [a.type for a in later.actions] == [RuleActionType.MARK_READ]


def test_json_files_import_too(tmp_path: Path) -> None:
    data = {"accounts": [{"email": "bo@example.test", "maildir": "m"}]}
    result = jobbridge("accounts", "import", str(write(tmp_path, json.dumps(data), "a.json")))
    assert result.exit_code == 0 and count(EmailAccount) == 1


def test_every_bad_entry_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    bad = """
accounts:
  - email: not-an-email
    maildir: m
  - email: ok@example.test
    rules:
      - name: r1
        conditions: {subject: "([", regex: true}
        actions: [{type: LABEL}]
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, bad)))
    assert result.exit_code == 1
    for where in (
        "accounts[0].email",
        "accounts[1]",
        "accounts[1].rules[0].conditions",
        "accounts[1].rules[0].actions[0]",
    ):
        assert where in result.stderr
    assert "needs `label`" in result.stderr and "not a valid regex" in result.stderr
    assert count(EmailAccount) == 0


def test_a_maildir_accounts_rule_moving_mail_out_of_its_maildir_is_refused(
    tmp_path: Path,
) -> None:
    away = "/".join([".."] * 3 + ["elsewhere"])
    escaping = f"""
accounts:
  - email: ok@example.test
    maildir: m
    rules:
      - name: away
        conditions: {{subject: x}}
        actions: [{{type: MOVE_FOLDER, folder: "{away}"}}]
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, escaping)))

    assert result.exit_code == 1
    assert f"rule 'away': folder '{away}': a Maildir folder's name" in result.stderr
    assert count(EmailAccount) == 0


def error_lines(result: Any) -> list[str]:
    return [str(line) for line in result.stderr.splitlines()]


def test_a_file_that_is_not_yaml_is_refused_plainly(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts: [\n")

    result = jobbridge("accounts", "import", str(path))

    assert result.exit_code == 1
    assert error_lines(result)[0].startswith(f"{path}: not valid YAML: line 2, column 1: ")


def test_a_yaml_error_keeps_what_the_parser_expected(tmp_path: Path) -> None:
    result = jobbridge("accounts", "import", str(write(tmp_path, "accounts: [a, b\n")))

    assert "expected ',' or ']'" in result.stderr


def test_an_empty_file_is_named_and_said_to_be_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "")

    result = jobbridge("accounts", "import", str(path))

    assert result.exit_code == 1
    assert error_lines(result) == [f"{path}: the file is empty; it needs an `accounts:` list"]


def test_a_top_level_that_is_not_a_mapping_is_named_without_internal_names(
    tmp_path: Path,
) -> None:
    result = jobbridge("accounts", "import", str(write(tmp_path, "- a\n- b\n")))

    assert "  (top level): must be a mapping of `key: value` entries, not a list" in (
        error_lines(result)
    )
    assert "AccountsFile" not in result.stderr


def test_a_send_action_to_something_that_is_no_address_is_named(tmp_path: Path) -> None:
    text = GOOD.replace("{type: DIGEST}, {type: ARCHIVE}", "{type: SEND_EMAIL, to: nobody}")

    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 1  # as for every refused file
    assert "accounts[0].rules[0].actions[0]" in result.stderr
    assert "must be addresses like name@example.com, not 'nobody'" in result.stderr
    assert count(EmailAccount) == 0


def test_a_wrong_summary_is_answered_in_the_documented_lower_case(tmp_path: Path) -> None:
    text = "accounts:\n  - {email: a@example.test, maildir: m, summary: hourly}\n"

    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert "  accounts[0].summary: must be daily or weekly, not 'hourly'" in error_lines(result)


def test_text_from_the_file_is_printed_literally_not_as_markup(tmp_path: Path) -> None:
    text = """
accounts:
  - email: a@example.test
    maildir: m
    rules:
      - name: r
        conditions: {subject: "[bold]x(", regex: true}
        actions: [{type: ARCHIVE}]
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert "not a valid regex '[bold]x('" in result.stderr


def test_demo_creates_an_account_whose_rules_exercise_every_kind_of_job(
    configure: Any, tmp_path: Path
) -> None:
    configure(DATA_DIR=str(tmp_path))
    first = jobbridge("demo")
    again = jobbridge("demo")
    assert first.exit_code == 0 and "28 messages" in first.stdout
    assert "28 messages" in again.stdout  # not seeded twice
    with session_scope() as session:
        types = set(session.scalars(select(RuleAction.type)))
        delayed = session.scalar(select(func.count()).where(RuleAction.delay_minutes.is_not(None)))
    assert {
        RuleActionType.DIGEST,
        RuleActionType.ARCHIVE,
        RuleActionType.LABEL,
        RuleActionType.REPLY,
        RuleActionType.MARK_READ,
    } <= types
    assert delayed == 1


# A Maildir path that cannot become a folder: its parent is a regular file.
def blocked_folder(tmp_path: Path, name: str) -> Path:
    parent = tmp_path / f"{name}-is-a-file"
    parent.write_text("not a folder\n")
    return parent / name


def three_maildir_accounts(tmp_path: Path, second_maildir: Path) -> str:
    return f"""
accounts:
  - {{email: one@example.test, maildir: {tmp_path / "one"}}}
  - {{email: two@example.test, maildir: {second_maildir}}}
  - {{email: three@example.test, maildir: {tmp_path / "three"}}}
"""


def test_a_maildir_that_cannot_be_created_refuses_the_whole_file(tmp_path: Path) -> None:
    text = three_maildir_accounts(tmp_path, blocked_folder(tmp_path, "two"))

    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 1
    assert count(EmailAccount) == 0
    assert not (tmp_path / "one").exists() and not (tmp_path / "three").exists()


def test_an_unusable_maildir_is_named_by_its_entry_and_its_path(tmp_path: Path) -> None:
    blocked = blocked_folder(tmp_path, "two")

    result = jobbridge(
        "accounts", "import", str(write(tmp_path, three_maildir_accounts(tmp_path, blocked)))
    )

    assert (
        f"  accounts[1].maildir: cannot use {blocked}: {blocked.parent} is not a directory"
        in error_lines(result)
    )


def test_every_unusable_maildir_is_named(tmp_path: Path) -> None:
    text = f"""
accounts:
  - {{email: one@example.test, maildir: {blocked_folder(tmp_path, "one")}}}
  - {{email: two@example.test, maildir: {tmp_path / "two"}}}
  - {{email: three@example.test, maildir: {blocked_folder(tmp_path, "three")}}}
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    named = [line.split(":")[0].strip() for line in error_lines(result)[1:]]
    assert named == ["accounts[0].maildir", "accounts[2].maildir"]


def test_a_maildir_that_is_a_file_is_refused_at_import(tmp_path: Path) -> None:
    a_file = tmp_path / "hostname"
    a_file.write_text("host\n")
    text = f"accounts:\n  - {{email: a@example.test, maildir: {a_file}}}\n"

    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 1
    assert f"  accounts[0].maildir: cannot use {a_file}: not a directory" in error_lines(result)
    assert count(EmailAccount) == 0


def test_a_folder_that_fails_after_the_check_leaves_no_account_written(tmp_path: Path) -> None:
    parsed = parse(
        yaml.safe_load(three_maildir_accounts(tmp_path, tmp_path / "later/two")), base=tmp_path
    )
    (tmp_path / "later").write_text("became a file after the file was checked\n")

    with pytest.raises(AccountsFileError, match=r"accounts\[1\]\.maildir: cannot use"):
        apply(parsed)

    assert count(EmailAccount) == 0


def test_the_same_account_twice_is_refused_naming_both_entries(tmp_path: Path) -> None:
    text = """
accounts:
  - {email: ana@example.test, maildir: a}
  - {email: bo@example.test, maildir: b}
  - {email: Ana@Example.test, maildir: c}
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 1
    assert "  accounts[2].email: same address as accounts[0]" in error_lines(result)
    assert count(EmailAccount) == 0


def test_the_same_sender_twice_in_one_account_is_refused_naming_both(tmp_path: Path) -> None:
    text = """
accounts:
  - email: ana@example.test
    maildir: a
    senders:
      - {email: A@x.example, status: IGNORED}
      - {email: a@x.example, category: Receipt}
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 1
    assert "  accounts[0].senders[1].email: same address as accounts[0].senders[0]" in (
        error_lines(result)
    )
    assert count(Sender) == 0


def test_one_sender_may_be_listed_by_two_accounts(tmp_path: Path) -> None:
    text = """
accounts:
  - {email: ana@example.test, maildir: a, senders: [{email: s@x.example, status: IGNORED}]}
  - {email: bo@example.test, maildir: b, senders: [{email: s@x.example, status: IGNORED}]}
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 0, result.output
    assert count(Sender) == 2


def test_an_entry_updates_the_account_stored_under_another_case(tmp_path: Path) -> None:
    jobbridge("accounts", "import", str(write(tmp_path, GOOD)))

    again = GOOD.replace("ana@example.test", "Ana@Example.test")
    result = jobbridge("accounts", "import", str(write(tmp_path, again)))

    assert "0 created, 1 updated" in result.stdout
    assert count(EmailAccount) == 1


def test_a_key_given_twice_in_one_yaml_mapping_is_refused_naming_its_line(
    tmp_path: Path,
) -> None:
    text = "accounts:\n  - email: a@example.test\n    maildir: m\n    email: b@example.test\n"

    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 1
    assert "line 4, column 5: the key 'email' is given twice (first on line 2)" in result.stderr
    assert count(EmailAccount) == 0


def test_a_yaml_merge_key_may_still_be_overridden_by_the_entry(tmp_path: Path) -> None:
    text = """
accounts:
  - &ana {email: ana@example.test, maildir: a, summary: daily}
  - {<<: *ana, email: bo@example.test, summary: weekly}
"""
    result = jobbridge("accounts", "import", str(write(tmp_path, text)))

    assert result.exit_code == 0, result.output
    with session_scope() as session:
        bo = session.scalars(select(EmailAccount).where(EmailAccount.email == "bo@example.test"))
        assert bo.one().summary_frequency is SummaryFrequency.WEEKLY


def test_a_key_given_twice_in_one_json_object_is_refused_naming_its_path(
    tmp_path: Path,
) -> None:
    text = '{"accounts": [{"email": "a@example.test", "maildir": "m", "email": "b@example.test"}]}'

    result = jobbridge("accounts", "import", str(write(tmp_path, text, "a.json")))

    assert result.exit_code == 1
    assert "  accounts[0].email: given twice in one object" in error_lines(result)
    assert count(EmailAccount) == 0
