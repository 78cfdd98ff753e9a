"""Every command's help reads whole on an 80-column terminal, and output piped into a
reader that stops early (`| head`) ends the command quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from tests.support.command_tree import command_paths

JOBBRIDGE = Path(sys.executable).parent / "jobbridge"


def jobbridge_help(*command: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBBRIDGE), *command, "--help"],
        env={**os.environ, "COLUMNS": str(columns)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_long_option_names_are_shown_whole_at_80_columns() -> None:
    done = jobbridge_help("bulk", "start")

    assert done.returncode == 0, done.stderr
    assert "--include-read / --no-include-read" in done.stdout
    assert "--force-reprocess / --no-force-reprocess" in done.stdout
    assert "…" not in done.stdout


@pytest.mark.parametrize("command", command_paths(), ids=lambda path: " ".join(path) or "jobbridge")
def test_each_commands_help_fits_80_columns_without_cutting_words(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    assert "…" not in result.stdout and "╭" not in result.stdout


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        done = subprocess.run(
            [str(JOBBRIDGE), "bulk", "start", "--help"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)

    assert done.returncode == 141  # as a process that SIGPIPE ended
    assert done.stderr == ""
