"""`jobbridge accounts import` and `jobbridge demo`: validated, idempotent, all or nothing.

Errors are read as whole lines of stderr: they are printed plainly, never wrapped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.store.db import session_scope
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


def test_bulk_start_and_show_from_the_command_line(configure: Any, tmp_path: Path) -> None:
    configure(DATA_DIR=str(tmp_path), JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    jobbridge("demo")
    failed = jobbridge("bulk", "start", "--account", "demo@localhost")
    # Direct HTTP to nowhere: the publish fails, and the run is closed rather than left open.
    assert failed.exit_code == 1 and "could not publish" in failed.stderr
    configure(JOB_PROVIDER="celery")
    started = jobbridge("bulk", "start", "--account", "demo@localhost")
    job_id = json.loads(started.stdout)["jobId"]
    shown = json.loads(jobbridge("bulk", "show", job_id).stdout)
    assert shown["status"] in {"PENDING", "RUNNING", "COMPLETED"}
