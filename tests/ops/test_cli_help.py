"""Every command's help reads whole on an 80-column terminal, each group lists its commands'
summaries whole, and output piped into a reader that stops early (`| head`) ends the
command quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.core import TyperGroup
from typer.testing import CliRunner

from bridge.cli import app
from tests.support.command_tree import command_paths, subcommand

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


def first_sentence(help_text: str) -> str:
    """The help's first sentence, its words joined by single spaces."""
    words = help_text.partition("\n\n")[0].split()
    ends = [index for index, word in enumerate(words) if word.endswith(".")]
    return " ".join(words[: ends[0] + 1] if ends else words)


GROUPS = [path for path in command_paths() if isinstance(subcommand(*path), TyperGroup)]


@pytest.mark.parametrize("group", GROUPS, ids=lambda path: " ".join(path) or "jobbridge")
def test_each_group_lists_its_commands_first_sentences_whole(group: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*group, "--help"], env={"COLUMNS": "80"})

    assert result.exit_code == 0, result.output
    listing = " ".join(result.stdout.partition("\nCommands:")[2].split())
    members = [path for path in command_paths() if path[:-1] == group and path]
    assert members
    for path in members:
        assert f"{path[-1]} {first_sentence(subcommand(*path).help or '')}" in listing
    assert "..." not in listing


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
