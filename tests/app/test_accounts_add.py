"""`jobbridge accounts add EMAIL --maildir PATH`: checked as an accounts file entry is.

A refused argument is one plain line on stderr naming it, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.store.db import session_scope
from tasks.models import EmailAccount

runner = CliRunner()


def jobbridge(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def accounts() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(EmailAccount)) or 0)


def test_an_empty_address_is_refused_naming_the_argument(tmp_path: Path) -> None:
    result = jobbridge("accounts", "add", "", "--maildir", str(tmp_path / "m"))

    assert result.exit_code == 2  # a bad argument, as click answers one
    assert result.stderr.splitlines() == ["EMAIL: must be an address like name@example.com, not ''"]
    assert accounts() == 0


def test_text_that_is_no_address_is_refused_naming_the_argument(tmp_path: Path) -> None:
    result = jobbridge("accounts", "add", "notanemail", "--maildir", str(tmp_path / "m"))

    assert result.exit_code == 2  # a bad argument, as click answers one
    assert result.stderr.splitlines() == [
        "EMAIL: must be an address like name@example.com, not 'notanemail'"
    ]
    assert accounts() == 0


def test_a_maildir_that_is_a_file_is_refused_naming_the_option(tmp_path: Path) -> None:
    a_file = tmp_path / "hostname"
    a_file.write_text("host\n")

    result = jobbridge("accounts", "add", "a@example.test", "--maildir", str(a_file))

    assert result.exit_code == 2  # a bad argument, as click answers one
    assert result.stderr.splitlines() == [f"--maildir: cannot use {a_file}: not a directory"]
    assert accounts() == 0


def test_a_maildir_under_a_file_is_refused_naming_that_file(tmp_path: Path) -> None:
    (tmp_path / "parent").write_text("a file\n")
    maildir = tmp_path / "parent" / "m"

    result = jobbridge("accounts", "add", "a@example.test", "--maildir", str(maildir))

    assert result.stderr.splitlines() == [
        f"--maildir: cannot use {maildir}: {tmp_path / 'parent'} is not a directory"
    ]
    assert accounts() == 0


def test_a_maildir_whose_folders_cannot_be_made_is_refused_naming_the_option() -> None:
    maildir = Path("/proc/jobbridge-test/m")  # looks writable to root; nothing can be made

    result = jobbridge("accounts", "add", "a@example.test", "--maildir", str(maildir))

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("--maildir: cannot use /proc/")
    assert accounts() == 0


def test_a_relative_maildir_is_checked_where_it_will_be_created(
    tmp_path: Path, monkeypatch: Any
) -> None:
    (tmp_path / "parent").write_text("a file\n")
    monkeypatch.chdir(tmp_path)

    result = jobbridge("accounts", "add", "a@example.test", "--maildir", "parent/m")

    assert result.stderr.splitlines() == [
        f"--maildir: cannot use {tmp_path / 'parent' / 'm'}: "
        f"{tmp_path / 'parent'} is not a directory"
    ]


def test_an_address_in_another_case_updates_the_same_account(tmp_path: Path) -> None:
    first = jobbridge("accounts", "add", "Ana@Example.test", "--maildir", str(tmp_path / "a"))
    again = jobbridge("accounts", "add", "ana@example.test", "--maildir", str(tmp_path / "b"))

    assert (first.exit_code, again.exit_code) == (0, 0)
    with session_scope() as session:
        stored = session.scalars(select(EmailAccount)).one()
    assert stored.email == "Ana@Example.test"  # the spelling it was stored with
    assert stored.provider_settings["path"] == str((tmp_path / "b").resolve())


def test_a_command_finds_an_account_by_its_address_in_another_case(tmp_path: Path) -> None:
    jobbridge("accounts", "add", "Ana@Example.test", "--maildir", str(tmp_path / "a"))

    result = jobbridge("accounts", "check", "ANA@example.test")

    assert result.exit_code == 0, result.output
    assert "Ana@Example.test (maildir): ready" in result.output
