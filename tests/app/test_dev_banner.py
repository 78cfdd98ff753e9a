"""The `jobbridge dev` banner's commands work from any directory: they name the
jobbridge that is running by its full path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks.devstack import prepare_dev


def commands_in(lines: list[str]) -> list[str]:
    """The program each suggested command starts (the lines that name an account or a job)."""
    return [line.split()[0] for line in lines if " --account " in line or " show " in line]


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
