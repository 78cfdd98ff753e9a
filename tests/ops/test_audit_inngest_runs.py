"""`jobbridge audit` counts the runs Inngest still holds for actions no longer PENDING
(cancelled, or done another way, before their time): it asks Inngest's REST API about
the events of those actions, the soonest first."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bridge.cli import app
from bridge.store.db import session_scope
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.support import env as test_env
from tests.support.ops_doubles import InngestRuns

Configure = Callable[..., Any]
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def wide_console_without_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


def action(
    status: ActionStatus, due_in: timedelta, event_id: str, provider: str = "inngest"
) -> None:
    with session_scope() as session:
        session.add(
            ScheduledAction(
                email_account_id="acct-audit",
                action_type=ActionType.ARCHIVE,
                message_id=f"m-{event_id}",
                thread_id="t",
                scheduled_for=utcnow() + due_in,
                status=status,
                scheduled_provider=provider,
                scheduled_id=event_id,
            )
        )


def audit(*extra: str) -> Any:
    return CliRunner().invoke(app, ["audit", *extra], catch_exceptions=False)


def held_runs_json() -> dict[str, Any]:
    result = audit("--json")
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)["inngest"]["heldRuns"]
    return report


def test_audit_counts_runs_inngest_still_holds_for_settled_actions(
    router: Any, configure: Configure
) -> None:
    configure(**test_env.INNGEST_ENV)
    inngest = InngestRuns(
        router, {"ev-cancelled": ["Running"], "ev-done-early": ["Completed"], "ev-failed": []}
    )
    action(ActionStatus.CANCELLED, DAY, "ev-cancelled")
    action(ActionStatus.COMPLETED, 2 * DAY, "ev-done-early")
    action(ActionStatus.FAILED, 3 * DAY, "ev-failed")

    report = held_runs_json()

    assert report == {"checked": 3, "candidates": 3, "held": 1, "error": None}
    assert inngest.asked == ["ev-cancelled", "ev-done-early", "ev-failed"]  # soonest first


def test_audit_asks_nothing_about_pending_past_or_other_providers_actions(
    router: Any, configure: Configure
) -> None:
    configure(**test_env.INNGEST_ENV)
    inngest = InngestRuns(router, {})
    action(ActionStatus.PENDING, DAY, "ev-pending")  # its run is still needed
    action(ActionStatus.CANCELLED, -DAY, "ev-past")  # its run woke up and ended
    action(ActionStatus.CANCELLED, DAY, "msg-qstash", provider="qstash")

    assert held_runs_json() == {"checked": 0, "candidates": 0, "held": 0, "error": None}
    assert inngest.asked == []


def test_audit_prints_the_held_runs_line(router: Any, configure: Configure) -> None:
    configure(**test_env.INNGEST_ENV)
    InngestRuns(router, {"ev-1": ["Running", "Running"]})
    action(ActionStatus.CANCELLED, DAY, "ev-1")

    output = audit().output

    assert "inngest: 2 runs still held for actions no longer PENDING (1 events)" in output


def test_audit_says_why_when_inngest_refuses_the_question(
    router: Any, configure: Configure
) -> None:
    configure(**{**test_env.INNGEST_ENV, "INNGEST_SIGNING_KEY": "signkey-test-" + "cd" * 32})
    InngestRuns(router, {"ev-1": ["Running"]})
    action(ActionStatus.CANCELLED, DAY, "ev-1")

    report = held_runs_json()

    assert report["held"] == 0 and "401" in report["error"]


def test_audit_without_an_inngest_signing_key_reports_no_held_runs(configure: Configure) -> None:
    configure()
    action(ActionStatus.CANCELLED, DAY, "ev-1")

    result = audit("--json")

    assert json.loads(result.stdout)["inngest"] is None
