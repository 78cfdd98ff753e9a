"""`jobbridge qstash messages|dlq list|dlq replay|dlq delete|schedules`, run as a user
would (in-process via CliRunner). QStash's console API is played by the test
(tests/support/qstash_console_double.py), and so is Inngest's event API: the chain is
Inngest first, as after the switch, so a replay that works lands there."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from bridge.cli import app
from tests.support import env as test_env
from tests.support.fake_inngest import FakeInngest
from tests.support.qstash_console_double import QStashConsole, now_ms

Configure = Callable[..., Any]

EXECUTE = f"{test_env.WEBHOOK_URL}/api/scheduled-actions/execute"
EXECUTE_OLD_PATH = f"{test_env.WEBHOOK_URL}/api/scheduled-action/execute"
DIGEST = f"{test_env.WEBHOOK_URL}/api/resend/digest"
SWEEP = f"{test_env.WEBHOOK_URL}/api/scheduled-actions/sweep"
ELSEWHERE = "https://other-app.example.test/api/hook"


@pytest.fixture(autouse=True)
def wide_console_without_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Rich wraps table cells at 80 columns when not on a terminal, and Settings read `.env`
    from the working directory: a wide console, in a directory without one."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def inngest(router: Any) -> FakeInngest:
    return FakeInngest(router)


@pytest.fixture
def qstash(router: Any, configure: Configure, inngest: FakeInngest) -> QStashConsole:
    """QStash still configured (token, keys, WEBHOOK_URL) and Inngest publishing: the
    chain is Inngest only (no failover), as during the drain."""
    configure(**test_env.QSTASH_ENV, **test_env.INNGEST_ENV)
    return QStashConsole(router)


def jobbridge(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["qstash", *args], input=input, catch_exceptions=False)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def table_rows(output: str) -> dict[str, list[str]]:
    """A rich table's rows by their first cell."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


# messages


def test_messages_counts_each_message_in_the_state_of_its_latest_log_entry(
    qstash: QStashConsole,
) -> None:
    at = now_ms() - 60_000
    qstash.log("msg_1", "CREATED", EXECUTE, at=at)
    qstash.log("msg_1", "DELIVERED", EXECUTE, at=at + 1000)
    qstash.log("msg_2", "CREATED", EXECUTE, at=at)
    qstash.log("msg_2", "ERROR", EXECUTE, at=at + 500)
    qstash.log("msg_2", "RETRY", EXECUTE, at=at + 600)
    qstash.log("msg_3", "CREATED", EXECUTE, at=at)

    report = json_of(jobbridge("messages", "--json"))

    assert report["byState"] == {"CREATED": 1, "DELIVERED": 1, "RETRY": 1}
    assert report["pending"] == 2


def test_messages_maps_urls_to_job_routes_aliases_and_others(qstash: QStashConsole) -> None:
    qstash.log("msg_1", "CREATED", EXECUTE)
    qstash.log("msg_2", "ACTIVE", EXECUTE_OLD_PATH)
    qstash.log("msg_3", "FAILED", DIGEST + "/simple")
    qstash.log("msg_4", "CANCELED", ELSEWHERE)

    report = json_of(jobbridge("messages", "--json"))

    assert {row["label"]: row["states"] for row in report["byRoute"]} == {
        "/api/scheduled-actions/execute (scheduled-action.execute)": {"CREATED": 1},
        "/api/scheduled-action/execute (scheduled-action.execute, alias)": {"ACTIVE": 1},
        "/api/resend/digest/simple (resend.digest, alias)": {"FAILED": 1},
        f"other: {ELSEWHERE}": {"CANCELED": 1},
    }


def test_messages_table_has_a_row_per_route_and_the_pending_total(qstash: QStashConsole) -> None:
    qstash.log("msg_1", "CREATED", EXECUTE)
    qstash.log("msg_2", "RETRY", EXECUTE)
    qstash.log("msg_3", "DELIVERED", EXECUTE)

    result = jobbridge("messages")

    assert result.exit_code == 0, result.output
    row = table_rows(result.output)["/api/scheduled-actions/execute (scheduled-action.execute)"]
    # CREATED ACTIVE RETRY ERROR DELIVERED FAILED CANCELED total
    assert row == ["1", "0", "1", "0", "1", "0", "0", "3"]
    assert "still in QStash: 2 messages (CREATED 1, ACTIVE 0, RETRY 1, ERROR 0)" in result.output


def test_messages_pages_through_the_logs_with_the_cursor(qstash: QStashConsole) -> None:
    at = now_ms() - 3_600_000
    for n in range(2500):
        qstash.log(f"msg_{n}", "DELIVERED", EXECUTE, at=at + n)

    report = json_of(jobbridge("messages", "--json"))

    assert report["pages"] == 3 and not report["truncated"]
    assert report["byState"] == {"DELIVERED": 2500}
    assert [query.get("cursor") for query in qstash.log_queries] == [None, "1000", "2000"]


def test_messages_stops_at_max_pages_and_says_the_count_is_partial(
    qstash: QStashConsole,
) -> None:
    for n in range(2500):
        qstash.log(f"msg_{n}", "CREATED", EXECUTE, at=now_ms() - n)

    result = jobbridge("messages", "--max-pages", "2")

    assert result.exit_code == 0, result.output
    assert len(qstash.log_queries) == 2
    assert "still in QStash: 2000 messages" in result.output
    assert "note: stopped after 2 pages" in result.output


def test_messages_reads_the_logs_only_since_the_given_time(qstash: QStashConsole) -> None:
    qstash.log("msg_old", "CREATED", EXECUTE, at=now_ms() - 3 * 86_400_000)
    qstash.log("msg_new", "CREATED", EXECUTE, at=now_ms() - 3_600_000)
    before = datetime.now(UTC) - timedelta(days=2)

    report = json_of(jobbridge("messages", "--since", "2d", "--json"))

    assert report["byState"] == {"CREATED": 1}
    sent = int(qstash.log_queries[0]["fromDate"])
    assert abs(sent - before.timestamp() * 1000) < 60_000


def test_messages_since_defaults_to_the_last_seven_days(qstash: QStashConsole) -> None:
    jobbridge("messages", "--json")

    sent = int(qstash.log_queries[0]["fromDate"])
    assert abs(sent - (now_ms() - 7 * 86_400_000)) < 60_000


@pytest.mark.parametrize("since", ["last tuesday", "99999999999d", "0001-01-01T00:00:00+05:00"])
def test_messages_refuses_a_since_it_cannot_read(qstash: QStashConsole, since: str) -> None:
    result = jobbridge("messages", "--since", since)

    assert result.exit_code == 2
    assert "--since" in result.output and qstash.log_queries == []


# dlq list


def test_dlq_list_shows_each_entry_with_its_job_and_last_status(qstash: QStashConsole) -> None:
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"}, status=489)
    qstash.dead_letter("dlq_2", ELSEWHERE, {"x": 1}, status=500)

    result = jobbridge("dlq", "list")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["dlq_1"][:3] == [
        "msg_dlq_1",
        "/api/scheduled-actions/execute (scheduled-action.execute)",
        "489",
    ]
    assert rows["dlq_1"][4] == "3"  # retries
    assert rows["dlq_2"][1:3] == [f"other: {ELSEWHERE}", "500"]


def test_dlq_list_pages_with_the_cursor_and_says_where_to_go_on(qstash: QStashConsole) -> None:
    for n in range(230):
        qstash.dead_letter(f"dlq_{n}", EXECUTE, {"scheduledActionId": f"a{n}"})

    first = json_of(jobbridge("dlq", "list", "--limit", "150", "--json"))
    rest = json_of(jobbridge("dlq", "list", "--cursor", first["cursor"], "--json"))

    assert len(first["entries"]) == 150 and first["cursor"] == "150"
    assert [e["dlqId"] for e in rest["entries"]] == [f"dlq_{n}" for n in range(150, 230)]
    assert rest["cursor"] is None


# dlq replay


def test_dlq_replay_publishes_through_the_current_chain_and_removes_the_entry(
    qstash: QStashConsole, inngest: FakeInngest
) -> None:
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    result = jobbridge("dlq", "replay", "dlq_1")

    assert result.exit_code == 0, result.output
    assert [(e["name"], e["data"]) for e in inngest.events] == [
        ("inbox-zero/scheduled-action.execute", {"scheduledActionId": "a1"})
    ]
    assert "dlq_1 msg_dlq_1" in result.output and "replayed to inngest" in result.output
    assert qstash.dead == {} and qstash.deleted == ["dlq_1"]


def test_dlq_replay_of_an_alias_route_publishes_the_job(
    qstash: QStashConsole, inngest: FakeInngest
) -> None:
    qstash.dead_letter("dlq_1", EXECUTE_OLD_PATH, {"scheduledActionId": "a1"})

    assert jobbridge("dlq", "replay", "dlq_1").exit_code == 0

    assert [e["name"] for e in inngest.events] == ["inbox-zero/scheduled-action.execute"]


def test_dlq_replay_keeps_the_original_dedup_id(
    qstash: QStashConsole, inngest: FakeInngest
) -> None:
    headers = {"Upstash-Deduplication-Id": ["scheduled-action-a1"]}
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"}, headers=headers)

    assert jobbridge("dlq", "replay", "dlq_1").exit_code == 0

    assert [e["id"] for e in inngest.events] == ["scheduled-action-a1"]


def test_dlq_replay_uses_the_message_id_when_qstash_kept_no_dedup_id(
    qstash: QStashConsole, inngest: FakeInngest
) -> None:
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"}, message_id="msg_orig")

    assert jobbridge("dlq", "replay", "dlq_1").exit_code == 0

    assert [e["id"] for e in inngest.events] == ["msg_orig"]


def test_dlq_replay_of_an_invalid_body_names_the_field_and_keeps_the_entry(
    qstash: QStashConsole, inngest: FakeInngest
) -> None:
    qstash.dead_letter("dlq_1", EXECUTE, {"actionId": "a1"})

    result = jobbridge("dlq", "replay", "dlq_1")

    assert result.exit_code == 1
    assert "dlq_1 msg_dlq_1" in result.output and "left in the DLQ" in result.output
    assert "scheduledActionId" in result.output
    assert inngest.events == [] and "dlq_1" in qstash.dead


def test_dlq_replay_keeps_the_entry_when_no_provider_takes_it(
    router: Any, configure: Configure
) -> None:
    configure(**test_env.QSTASH_ENV, **test_env.INNGEST_ENV)
    FakeInngest(router, down=True)
    qstash = QStashConsole(router)
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    result = jobbridge("dlq", "replay", "dlq_1")

    assert result.exit_code == 1
    assert "left in the DLQ: publish failed: inngest" in result.output
    assert "dlq_1" in qstash.dead


def test_dlq_replay_leaves_a_message_for_another_app(
    qstash: QStashConsole, inngest: FakeInngest
) -> None:
    qstash.dead_letter("dlq_1", ELSEWHERE, {"scheduledActionId": "a1"})

    result = jobbridge("dlq", "replay", "dlq_1")

    assert result.exit_code == 1
    assert "not a job route of this app" in result.output
    assert inngest.events == [] and "dlq_1" in qstash.dead


def test_dlq_replay_says_which_ids_the_dlq_does_not_hold(qstash: QStashConsole) -> None:
    result = jobbridge("dlq", "replay", "dlq_gone")

    assert result.exit_code == 1
    assert "dlq_gone - -: left in the DLQ: no such DLQ entry" in result.output


def test_dlq_replay_all_replays_every_entry(qstash: QStashConsole, inngest: FakeInngest) -> None:
    for n in range(3):
        qstash.dead_letter(f"dlq_{n}", EXECUTE, {"scheduledActionId": f"a{n}"})

    result = jobbridge("dlq", "replay", "--all")

    assert result.exit_code == 0, result.output
    assert sorted(e["data"]["scheduledActionId"] for e in inngest.events) == ["a0", "a1", "a2"]
    assert qstash.dead == {}
    assert "replayed 3 of 3; left in the DLQ: 0" in result.output


def test_dlq_replay_needs_ids_or_all(qstash: QStashConsole) -> None:
    result = jobbridge("dlq", "replay")

    assert result.exit_code == 2
    assert "--all" in result.output


# dlq delete


def test_dlq_delete_refuses_without_yes_when_stdin_is_not_a_terminal(
    qstash: QStashConsole,
) -> None:
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    result = jobbridge("dlq", "delete", "dlq_1")

    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert "dlq_1" in qstash.dead


def test_dlq_delete_with_yes_deletes_the_given_entries(qstash: QStashConsole) -> None:
    for n in range(3):
        qstash.dead_letter(f"dlq_{n}", EXECUTE, {"scheduledActionId": f"a{n}"})

    result = jobbridge("dlq", "delete", "dlq_0", "dlq_2", "dlq_9", "--yes")

    assert result.exit_code == 0, result.output
    assert list(qstash.dead) == ["dlq_1"]
    assert "deleted 2 of 3 DLQ entries (1 not found)" in result.output


def test_dlq_delete_asks_for_confirmation_on_a_terminal(
    qstash: QStashConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.cli.qstash._stdin_is_terminal", lambda: True)
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    result = jobbridge("dlq", "delete", "dlq_1", input="y\n")

    assert result.exit_code == 0, result.output
    assert "Delete 1 DLQ entries (dlq_1) for good?" in result.output
    assert qstash.dead == {}


def test_dlq_delete_declined_deletes_nothing(
    qstash: QStashConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.cli.qstash._stdin_is_terminal", lambda: True)
    qstash.dead_letter("dlq_1", EXECUTE, {"scheduledActionId": "a1"})

    result = jobbridge("dlq", "delete", "dlq_1", input="n\n")

    assert result.exit_code == 1
    assert "nothing deleted" in result.output and "dlq_1" in qstash.dead


def test_dlq_delete_all_with_yes_empties_the_dlq(qstash: QStashConsole) -> None:
    for n in range(130):
        qstash.dead_letter(f"dlq_{n}", EXECUTE, {"scheduledActionId": f"a{n}"})

    result = jobbridge("dlq", "delete", "--all", "--yes")

    assert result.exit_code == 0, result.output
    assert qstash.dead == {} and "deleted 130 of 130" in result.output


# schedules


def test_schedules_lists_cron_destination_job_paused_and_last_run(
    qstash: QStashConsole,
) -> None:
    last = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    qstash.schedule("scd_1", SWEEP, "* * * * *", lastScheduleTime=last)
    qstash.schedule("scd_2", ELSEWHERE, "0 9 * * *", isPaused=True)

    result = jobbridge("schedules")

    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["scd_1"][:5] == [
        "* * * * *",
        SWEEP,
        "/api/scheduled-actions/sweep (cron scheduled-actions.sweep)",
        "no",
        "2026-03-01 12:00:00",
    ]
    assert rows["scd_2"][2:4] == ["-", "yes"]


def test_schedules_json_gives_the_job_route(qstash: QStashConsole) -> None:
    qstash.schedule("scd_1", EXECUTE, "*/5 * * * *")

    report = json_of(jobbridge("schedules", "--json"))

    assert report["schedules"][0]["destination"]["job"] == "scheduled-action.execute"


# errors

COMMANDS = [
    ["messages"],
    ["dlq", "list"],
    ["dlq", "replay", "--all"],
    ["dlq", "delete", "--all", "--yes"],
    ["schedules"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_without_qstash_token_the_command_exits_2_naming_it(
    command: list[str], configure: Configure
) -> None:
    configure(QSTASH_TOKEN=None)

    result = jobbridge(*command)

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "QSTASH_TOKEN is not set: `jobbridge qstash` reads QStash's API with it"
    ]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_qstash_unreachable_is_one_line_and_exit_1(
    command: list[str], router: Any, configure: Configure
) -> None:
    configure(**test_env.QSTASH_ENV)
    QStashConsole(router, down=True)

    result = jobbridge(*command)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"QStash at {test_env.QSTASH_API} is unreachable (ConnectError")


def test_a_refused_token_is_named(router: Any, configure: Configure) -> None:
    configure(**{**test_env.QSTASH_ENV, "QSTASH_TOKEN": "not-the-token"})
    QStashConsole(router)

    result = jobbridge("dlq", "list")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"QStash at {test_env.QSTASH_API} refused QSTASH_TOKEN (HTTP 401): check QSTASH_TOKEN"
    )
