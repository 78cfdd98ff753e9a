"""What an operator reads for an error whose cause lies elsewhere than where it surfaced."""

from __future__ import annotations

import sqlite3

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
