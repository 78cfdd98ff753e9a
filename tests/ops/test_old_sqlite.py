"""A Python whose SQLite is too old for jobbridge's statements is refused at start,
naming DATABASE_URL, instead of failing later inside a job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import sqlite_library
from config.sqlite_library import SQLITE_AT_LEAST, missing_from

JOBBRIDGE = Path(sys.executable).parent / "jobbridge"
# Loaded by Python at start (from PYTHONPATH): the sqlite3 module reports an older library.
OLD_SQLITE = """\
import sqlite3
sqlite3.sqlite_version_info = (3, 31, 1)
sqlite3.sqlite_version = "3.31.1"
"""


def jobbridge_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`jobbridge config` in an empty directory, on a Python whose SQLite says 3.31.1."""
    (tmp_path / "sitecustomize.py").write_text(OLD_SQLITE)
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [str(JOBBRIDGE), "config"],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(tmp_path), "DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_embedded_default_on_an_old_sqlite_exits_2_naming_database_url(
    tmp_path: Path,
) -> None:
    done = jobbridge_config(tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "DATABASE_URL: unset, so SQLite under DATA_DIR" in done.stderr
    assert "needs SQLite 3.35.0 or later" in done.stderr
    assert "has 3.31.1" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_sqlite_database_url_on_an_old_sqlite_is_refused_too(tmp_path: Path) -> None:
    done = jobbridge_config(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "DATABASE_URL: names a SQLite database" in done.stderr


def test_postgresql_does_not_need_this_pythons_sqlite(tmp_path: Path) -> None:
    done = jobbridge_config(tmp_path, DATABASE_URL="postgresql://user@127.0.0.1:5432/jobs")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SQLite" not in done.stderr


def test_this_machines_sqlite_is_new_enough() -> None:
    assert sqlite_library.sqlite_problem() is None


def test_a_sqlite_older_than_returning_is_named_with_its_version() -> None:
    problem = missing_from((3, 34, 1), "3.34.1")

    assert problem == "needs SQLite 3.35.0 or later, and this Python's sqlite3 has 3.34.1"


def test_the_oldest_sqlite_with_returning_passes_the_version_check() -> None:
    assert missing_from(SQLITE_AT_LEAST, "3.35.0") is None


def test_a_sqlite_without_the_json_functions_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # A function this SQLite lacks stands in for the JSON ones a build left out.
    monkeypatch.setattr(sqlite_library, "_JSON_PROBE", "SELECT json_nowhere(1)")

    problem = missing_from((3, 36, 0), "3.36.0")

    assert problem == "needs SQLite's JSON functions, and this Python's SQLite 3.36.0 lacks them"
