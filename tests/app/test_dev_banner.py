"""The `jobbridge dev` banner's commands work from any directory and another terminal:
they name the jobbridge that is running by its full path, and the DATA_DIR the
environment gave the stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks.devstack import prepare_dev


def suggested(lines: list[str]) -> list[list[str]]:
    """The words of each suggested command (the lines that name an account or a job)."""
    return [line.split() for line in lines if " --account " in line or " show " in line]


def commands_in(lines: list[str]) -> list[str]:
    """The program each suggested command starts, after any VARIABLE=value before it."""
    return [next(w for w in words if "=" not in w) for words in suggested(lines)]


def test_the_banner_names_the_running_jobbridge_by_its_full_path(
    configure: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = configure(DATA_DIR=str(tmp_path), DATABASE_URL=None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [".venv/bin/jobbridge", "dev"])

    lines = prepare_dev(settings)

    assert set(commands_in(lines)) == {str(tmp_path / ".venv" / "bin" / "jobbridge")}


def test_the_banner_names_jobbridge_when_started_some_other_way(
    configure: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = configure(DATA_DIR=str(tmp_path), DATABASE_URL=None)
    monkeypatch.setattr("sys.argv", ["-m", "dev"])

    lines = prepare_dev(settings)

    assert set(commands_in(lines)) == {"jobbridge"}


def test_the_banner_gives_each_command_the_data_dir_the_environment_gave(
    configure: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stack data").mkdir()  # as `jobbridge dev` makes it before this
    settings = configure(DATA_DIR="stack data", DATABASE_URL=None)

    lines = prepare_dev(settings)

    wanted = f"DATA_DIR='{tmp_path / 'stack data'}'"
    assert all(" ".join(words).startswith(wanted) for words in suggested(lines))


def test_the_banner_gives_the_default_data_dir_as_an_absolute_path(
    configure: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".jobbridge").mkdir()  # the default, as `jobbridge dev` makes it
    settings = configure(DATA_DIR=None, DATABASE_URL=None)

    lines = prepare_dev(settings)

    wanted = f"DATA_DIR={tmp_path / '.jobbridge'}"
    assert all(" ".join(words).startswith(wanted) for words in suggested(lines))


def test_the_banner_says_which_other_variables_to_set_without_printing_them(
    configure: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = configure(DATA_DIR=str(tmp_path), DATABASE_URL=None, REDIS_KEY_PREFIX="secret-ish")

    lines = prepare_dev(settings)

    said, _, _ = lines[0].partition(":")
    assert "with the same " in said and "REDIS_KEY_PREFIX" in said
    assert not any("secret-ish" in line for line in lines)
