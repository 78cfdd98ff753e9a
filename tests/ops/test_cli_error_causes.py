"""What an operator reads for an error whose cause lies elsewhere than where it surfaced."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from bridge.cli.errors import explain
from bridge.errors import PublishError
from config import Provider


def test_a_publish_that_failed_on_missing_tables_says_to_upgrade_the_database() -> None:
    missing = OperationalError(
        "INSERT INTO deferred_job ...", {}, sqlite3.OperationalError("no such table: deferred_job")
    )
    refused = PublishError(Provider.CELERY, f"broker refused or unreachable: {missing}")
    refused.__cause__ = missing  # as `raise ... from` leaves it

    status, text = explain(refused)

    assert status == 1
    assert "no jobbridge tables" in text and "jobbridge db upgrade" in text
    assert "broker" not in text and "[SQL" not in text


def test_a_server_that_cannot_be_reached_is_not_called_a_path() -> None:
    refused = ConnectionError("IMAP 127.0.0.1:18297 unreachable: [Errno 111] Connection refused")

    status, text = explain(refused)

    assert status == 1
    assert "cannot reach: IMAP 127.0.0.1:18297 unreachable" in text
    assert "reachable from here" in text and "path" not in text


def test_a_path_from_an_option_is_not_blamed_on_data_dir(configure: Any, tmp_path: Path) -> None:
    configure(DATA_DIR=str(tmp_path / "data"))
    missing = FileNotFoundError(2, "No such file or directory", "/nonexistent/dir/.env")

    status, text = explain(missing)

    assert status == 1
    assert "cannot use /nonexistent/dir/.env: No such file or directory" in text
    assert "(the file or option given)" in text and "DATA_DIR" not in text


def test_a_path_under_data_dir_names_data_dir(configure: Any, tmp_path: Path) -> None:
    configure(DATA_DIR=str(tmp_path / "data"))
    refused = PermissionError(13, "Permission denied", str(tmp_path / "data" / "broker" / "q"))

    _, text = explain(refused)

    assert "(DATA_DIR)" in text
