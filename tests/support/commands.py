"""Commands run as an operator runs them: a real process, in a 40-column CI environment
without a terminal or standard input, with none of the suite's provider variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
# The providers' variables the suite may have set for itself, and the debug switch.
CLEARED_PREFIXES = ("INNGEST_", "QSTASH_", "JOB_", "WEBHOOK_URL", "JOBBRIDGE_DEBUG")


def run(command: list[str], workdir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
    env.update(COLUMNS="40", CI="true", **variables)
    return subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def jobbridge(*args: str, workdir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "jobbridge"), *args], workdir, **variables)


def assert_plain(
    done: subprocess.CompletedProcess[str], code: int, most_lines: int = 2
) -> list[str]:
    """The exit status, no traceback, and the lines of stderr (one or two, unless told)."""
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= most_lines, done.stderr
    return lines
