"""Every `jobbridge` command in the README, run as a user would (in-process via CliRunner).

Assertions read JSON from stdout and whole lines from stderr, never Rich's rendering,
which wraps at the terminal's width."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, inspect, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.store.db import session_scope
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, ScheduledAction, SchedulingStatus
from tests.conftest import Mailbox
from tests.support.actions import insert_action
from tests.support.services import free_port

runner = CliRunner()


def jobbridge(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def action(action_id: str) -> ScheduledAction:
    row = scheduled_actions.get(action_id)
    assert row is not None
    return row


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
    assert result.stdout.startswith("database migrated: empty -> ")


def test_db_upgrade_says_when_there_was_nothing_to_do(configure: Any, tmp_path: Path) -> None:
    configure(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    jobbridge("db", "upgrade")
    again = jobbridge("db", "upgrade")
    assert again.exit_code == 0
    assert again.stdout.startswith("database is up to date (migration ")


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
    row = json.loads(scheduled.stdout)
    assert (row["status"], row["schedulingStatus"], row["provider"]) == (
        "PENDING",
        "SCHEDULED",
        "celery",
    )

    shown = json.loads(jobbridge("actions", "show", row["id"]).stdout)
    assert shown["id"] == row["id"]

    assert jobbridge("actions", "cancel", row["id"]).exit_code == 0
    again = jobbridge("actions", "cancel", row["id"])
    unknown = jobbridge("actions", "cancel", "nope")
    assert again.exit_code == 1 and "is CANCELLED, not PENDING" in again.stderr
    assert unknown.exit_code == 1 and "no action nope" in unknown.stderr
    assert action(row["id"]).status is ActionStatus.CANCELLED


def test_actions_schedule_that_could_not_publish_keeps_the_action_and_exits_1(
    mailbox: Mailbox, configure: Any
) -> None:
    configure(BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//")

    # Within the ETA horizon: published to the broker, not kept in the database.
    scheduled = schedule_via_cli(mailbox.email, "archive", mailbox.keys[0], "--in", "5s")

    assert scheduled.exit_code == 1
    row = json.loads(scheduled.stdout)
    assert row["schedulingStatus"] == "FAILED"
    assert f"action {row['id']} is saved, but its publish failed" in scheduled.stderr
    assert action(row["id"]).status is ActionStatus.PENDING
    scheduled_actions.cancel(row["id"])  # not left for another test's sweep


def test_actions_schedule_rejects_an_unknown_type(mailbox: Mailbox) -> None:
    result = schedule_via_cli(mailbox.email, "EXPLODE", mailbox.keys[0])
    assert result.exit_code == 2
    assert "ARCHIVE" in result.stderr


def test_actions_schedule_rejects_an_unknown_account(mailbox: Mailbox) -> None:
    result = schedule_via_cli("nobody@example.test", "ARCHIVE", mailbox.keys[0])
    assert result.exit_code == 1
    assert "accounts add" in result.stderr


def test_actions_schedule_rejects_a_naive_time(mailbox: Mailbox) -> None:
    result = schedule_via_cli(
        mailbox.email, "ARCHIVE", mailbox.keys[0], "--at", "2030-01-01T09:00:00"
    )
    assert result.exit_code == 2
    assert "timezone" in result.stderr


def scheduled_rows() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(ScheduledAction)) or 0)


def test_actions_schedule_refuses_a_label_action_without_a_label(mailbox: Mailbox) -> None:
    result = schedule_via_cli(mailbox.email, "LABEL", mailbox.keys[0])

    assert result.exit_code == 2
    assert "--label" in result.stderr
    assert scheduled_rows() == 0


def test_actions_schedule_refuses_a_recipient_that_is_no_address(mailbox: Mailbox) -> None:
    result = schedule_via_cli(
        mailbox.email, "SEND_EMAIL", mailbox.keys[0], "--to", "notanaddress", "--in", "2s"
    )

    assert result.exit_code == 2
    assert "--to" in result.stderr and "name@example.com" in result.stderr
    assert scheduled_rows() == 0


@pytest.mark.parametrize("option", ["--label", "--thread"])
def test_actions_schedule_refuses_a_value_longer_than_its_column_naming_the_option(
    mailbox: Mailbox, option: str
) -> None:
    options = ["--label", "x"] if option == "--thread" else []
    result = schedule_via_cli(
        mailbox.email, "LABEL", mailbox.keys[0], *options, option, "x" * 300, "--in", "2s"
    )

    assert result.exit_code == 2
    assert option in result.stderr and "300 characters, more than the 255" in result.stderr
    assert scheduled_rows() == 0


def test_actions_schedule_refuses_a_message_the_mailbox_does_not_have(mailbox: Mailbox) -> None:
    result = schedule_via_cli(mailbox.email, "ARCHIVE", "no-such-message", "--in", "2s")

    assert result.exit_code == 2
    assert f"{mailbox.email} has no message no-such-message" in result.stderr
    assert scheduled_rows() == 0


def test_sweep_prints_its_report() -> None:
    result = jobbridge("sweep")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "reclaimed": 0,
        "enqueued": 0,
        "pruned_deliveries": 0,
        "ran": True,
        "failed": 0,
    }


def test_sweep_exits_1_naming_the_actions_it_could_not_publish(
    mailbox: Mailbox, fake_inngest: Any
) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    fake_inngest.down = True

    result = jobbridge("sweep")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed"] == 1
    assert "1 due action(s) could not be published" in result.stderr
    assert action(row.id).scheduling_status is SchedulingStatus.FAILED


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
    assert json.loads(result.stdout) == {"provider": "celery", "id": "cli-1", "deduplicated": False}


def test_enqueue_names_the_bad_field_as_a_usage_error_and_publishes_nothing() -> None:
    result = jobbridge("enqueue", "scheduled-action.execute", "--data", '{"id": "a1"}')
    assert result.exit_code == 2
    assert "Invalid value for --data" in result.stderr and "scheduledActionId" in result.stderr


def test_enqueue_at_a_time_for_a_job_that_runs_on_delivery_is_a_usage_error() -> None:
    data = '{"emailAccountId": "x"}'
    at = "2030-01-01T00:00:00Z"

    result = jobbridge("enqueue", "resend.digest", "--data", data, "--at", at)

    assert result.exit_code == 2
    assert "Invalid value for --at" in result.stderr and "cannot be given a time" in result.stderr
    assert "delayable=True" not in result.stderr


@pytest.mark.parametrize("key", ["", "  "])
def test_enqueue_refuses_an_empty_dedup_id_rather_than_make_one_up(key: str) -> None:
    data = '{"scheduledActionId": "a1"}'

    result = jobbridge("enqueue", "scheduled-action.execute", "--data", data, "--dedup-id", key)

    assert result.exit_code == 2
    assert "Invalid value for --dedup-id" in result.stderr and "must not be empty" in result.stderr


def test_enqueue_names_the_known_jobs_for_an_unknown_one() -> None:
    result = jobbridge("enqueue", "no.such-job", "--data", "{}")
    assert result.exit_code == 1
    assert "scheduled-action.execute" in result.stderr


def test_enqueue_refuses_data_that_is_not_a_json_object() -> None:
    result = jobbridge("enqueue", "scheduled-action.execute", "--data", "[]")

    assert result.exit_code == 2
    assert "must be a JSON object" in result.stderr
    assert "Field required" not in result.stderr


def test_enqueue_prints_an_unknown_job_as_a_sentence_not_a_quoted_repr() -> None:
    result = jobbridge("enqueue", "no.such-job", "--data", "{}")

    assert result.stderr.startswith("unknown job 'no.such-job'; known jobs: ")


def test_enqueue_refuses_data_nested_too_deeply_naming_the_option() -> None:
    nested = '{"scheduledActionId": ' + "[" * 100_000 + "]" * 100_000 + "}"

    result = jobbridge("enqueue", "scheduled-action.execute", "--data", nested)

    assert result.exit_code == 2
    assert "Invalid value for --data" in result.stderr and "nested too deeply" in result.stderr


def test_debug_shows_the_traceback_of_an_unexpected_error_without_asking_for_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tasks.cli.inbox

    def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(tasks.cli.inbox, "sweep", broken)

    result = jobbridge("--debug", "sweep")

    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "unexpected error: RuntimeError: a bug"


def test_categorize_names_the_senders_given_that_are_no_address(mailbox: Mailbox) -> None:
    result = jobbridge("categorize", "--account", mailbox.email, "notanaddress")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unusable"] == 1
    assert "1 unusable sender left out: 'notanaddress'" in result.stderr
