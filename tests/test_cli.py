"""Every `jobbridge` command in the README, run as a user would (in-process via CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from bridge.cli import app
from tasks import scheduled_actions
from tasks.models import ActionStatus
from tests.conftest import Mailbox

runner = CliRunner()


def jobbridge(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def schedule_via_cli(account: str, action_type: str, message: str, *options: str) -> Any:
    return jobbridge(
        "actions",
        "schedule",
        "--account",
        account,
        "--type",
        action_type,
        "--message",
        message,
        *options,
    )


def test_db_upgrade_creates_the_schema(configure: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    configure(DATABASE_URL=url)
    result = jobbridge("db", "upgrade")
    assert result.exit_code == 0, result.output
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"scheduled_action", "email_account", "deferred_job", "processed_delivery"} <= tables


def test_accounts_add_is_idempotent(tmp_path: Path) -> None:
    first = jobbridge("accounts", "add", "cli@example.test", "--maildir", str(tmp_path / "m"))
    second = jobbridge("accounts", "add", "cli@example.test", "--maildir", str(tmp_path / "m"))
    assert first.exit_code == second.exit_code == 0
    id_of = [line.split("id=")[1].split()[0] for line in (first.output, second.output)]
    assert id_of[0] == id_of[1]
    assert (tmp_path / "m" / "cur").is_dir()


def test_actions_schedule_show_and_cancel(mailbox: Mailbox) -> None:
    scheduled = schedule_via_cli(mailbox.email, "archive", mailbox.keys[0], "--in", "10m")
    assert scheduled.exit_code == 0, scheduled.output
    row = json.loads(scheduled.output)
    assert (row["status"], row["schedulingStatus"], row["provider"]) == (
        "PENDING",
        "SCHEDULED",
        "celery",
    )

    shown = json.loads(jobbridge("actions", "show", row["id"]).output)
    assert shown["id"] == row["id"]

    assert jobbridge("actions", "cancel", row["id"]).exit_code == 0
    assert jobbridge("actions", "cancel", row["id"]).exit_code == 1
    assert scheduled_actions.get(row["id"]).status is ActionStatus.CANCELLED


def test_actions_schedule_rejects_an_unknown_type(mailbox: Mailbox) -> None:
    result = schedule_via_cli(mailbox.email, "EXPLODE", mailbox.keys[0])
    assert result.exit_code == 2
    assert "ARCHIVE" in result.output


def test_actions_schedule_rejects_an_unknown_account(mailbox: Mailbox) -> None:
    result = schedule_via_cli("nobody@example.test", "ARCHIVE", mailbox.keys[0])
    assert result.exit_code == 1
    assert "accounts add" in result.output


def test_actions_schedule_rejects_a_naive_time(mailbox: Mailbox) -> None:
    result = schedule_via_cli(
        mailbox.email, "ARCHIVE", mailbox.keys[0], "--at", "2030-01-01T09:00:00"
    )
    assert result.exit_code == 2
    assert "timezone" in result.output


def test_sweep_prints_its_report() -> None:
    result = jobbridge("sweep")
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "reclaimed": 0,
        "enqueued": 0,
        "pruned_deliveries": 0,
        "ran": True,
    }


def test_enqueue_prints_the_receipt() -> None:
    result = jobbridge(
        "enqueue",
        "scheduled-action.execute",
        "--data",
        '{"scheduledActionId": "a1"}',
        "--dedup-id",
        "cli-1",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"provider": "celery", "id": "cli-1", "deduplicated": False}


def test_enqueue_names_the_bad_field_and_publishes_nothing() -> None:
    result = jobbridge("enqueue", "scheduled-action.execute", "--data", '{"id": "a1"}')
    assert result.exit_code == 1
    assert "scheduledActionId" in result.output


def test_enqueue_names_the_known_jobs_for_an_unknown_one() -> None:
    result = jobbridge("enqueue", "no.such-job", "--data", "{}")
    assert result.exit_code == 1
    assert "scheduled-action.execute" in result.output
