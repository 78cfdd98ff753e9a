"""The migration day, rehearsed: QStash holds 600 of 1,000 scheduled actions, the
configuration switches to Inngest, `migrate` re-queues all 1,000, and then every old
QStash message and every new Inngest event is delivered, shuffled, some twice. Each
action runs exactly once; none is left PENDING; the audit log accounts for all."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import func, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.errors import PublishError
from bridge.store.db import session_scope
from tasks import scheduled_actions
from tasks.demo import add_account
from tasks.migrate_to_inngest import MigrationRefused, migrate_qstash_to_inngest
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.support import env
from tests.support.actions import insert_action
from tests.support.fake_inngest import FakeInngest, run_function
from tests.support.fake_qstash import FakeQStash, deliver

ACTIONS = 1000
ON_QSTASH = 600


def seed(tmp_path: Path) -> list[Any]:
    # An empty Maildir: each action finds its message gone and completes without effect,
    # which still claims its row exactly once, the thing under test.
    account = add_account("drill@example.test", tmp_path / "maildir")
    due = utcnow() - timedelta(seconds=5)
    return [
        insert_action(account.id, ActionType.ARCHIVE, f"missing-{n}", scheduled_for=due)
        for n in range(ACTIONS)
    ]


def audit_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def status_counts() -> dict[ActionStatus, int]:
    with session_scope() as session:
        rows = session.execute(
            select(ScheduledAction.status, func.count()).group_by(ScheduledAction.status)
        )
        return {status: count for status, count in rows}


# 1,900 signed deliveries through a real web server: minutes on a small CI machine.
@pytest.mark.timeout(360)
def test_migration_drill_runs_every_action_exactly_once(
    tmp_path: Path, web: str, router: Any, configure: Any
) -> None:
    rows = seed(tmp_path)
    configure(**env.QSTASH_ENV)
    qstash = FakeQStash(router)
    for row in rows[:ON_QSTASH]:
        scheduled_actions.publish(row, scheduled_actions.dedup_id_for(row.id))
    assert len(qstash.messages) == ON_QSTASH

    # Switch: Inngest publishes; QStash keeps its signing keys to drain.
    configure(**env.INNGEST_ENV, QSTASH_TOKEN=None)
    inngest = FakeInngest(router)
    settings = configure()
    audit = tmp_path / "audit.jsonl"
    report = migrate_qstash_to_inngest(settings, audit_log=audit, batch_size=250)
    assert (report.sent, report.requests, len(inngest.events)) == (ACTIONS, 4, ACTIONS)

    deliveries: list[tuple[str, Any]] = [("qstash", m) for m in qstash.messages]
    deliveries += [("inngest", e) for e in inngest.events]
    shuffle = random.Random(4)
    deliveries += shuffle.sample(deliveries, 300)  # some arrive twice
    shuffle.shuffle(deliveries)

    def send(item: tuple[str, Any]) -> int:
        kind, thing = item
        if kind == "qstash":
            return deliver(thing, web).status_code
        return run_function(web, "scheduled-action-execute", thing).status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, deliveries))

    # A QStash delivery that met a run in progress was told to retry (503 Retry-After);
    # QStash retries it later, by when that run has finished.
    assert set(statuses) <= {200, 503}
    for (kind, message), status in zip(deliveries, statuses, strict=True):
        if status == 503:
            assert kind == "qstash"
            message.retried += 1
            assert deliver(message, web).status_code == 200
    assert status_counts() == {ActionStatus.COMPLETED: ACTIONS}
    with session_scope() as session:
        attempts = set(session.scalars(select(ScheduledAction.execution_attempts)))
    assert attempts == {1}  # each claimed, and run, exactly once
    entries = audit_entries(audit)
    assert {e["id"] for e in entries if e["result"] == "sent"} == {r.id for r in rows}
    assert {e["eventId"] for e in entries} == {f"scheduled-action-{r.id}" for r in rows}


def test_an_interrupted_migration_resumes_and_sends_nothing_twice(
    tmp_path: Path, router: Any, configure: Any
) -> None:
    rows = seed(tmp_path)
    settings = configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router)
    audit = tmp_path / "audit.jsonl"
    sent_before_failure = []

    original = inngest._receive

    def fail_after_half(request: Any) -> Any:
        if len(inngest.events) >= ACTIONS // 2:
            inngest.down = True
        return original(request)

    router.routes[-1].side_effect = fail_after_half  # the event API route FakeInngest added
    with pytest.raises(PublishError):
        migrate_qstash_to_inngest(settings, audit_log=audit, batch_size=100)
    sent_before_failure = [e["id"] for e in audit_entries(audit) if e["result"] == "sent"]
    assert len(sent_before_failure) == ACTIONS // 2

    inngest.down = False
    router.routes[-1].side_effect = original
    report = migrate_qstash_to_inngest(settings, audit_log=audit, batch_size=100)

    assert (report.already_sent, report.sent) == (ACTIONS // 2, ACTIONS // 2)
    ids = [event["id"] for event in inngest.events]
    assert len(ids) == len(set(ids)) == ACTIONS
    sent = {e["id"] for e in audit_entries(audit) if e["result"] == "sent"}
    assert sent == {r.id for r in rows}


def test_dry_run_writes_nothing_and_sends_nothing(
    tmp_path: Path, router: Any, configure: Any
) -> None:
    seed(tmp_path)
    configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router)
    audit = tmp_path / "audit.jsonl"
    result = CliRunner().invoke(
        app,
        [
            *("migrate", "qstash-to-inngest", "--dry-run", "--batch-size", "300"),
            *("--audit-log", str(audit)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"would send {ACTIONS} in {-(-ACTIONS // 300)} requests" in result.output
    assert (inngest.requests, audit.exists()) == (0, False)
    with session_scope() as session:
        assert (
            session.scalar(
                select(func.count()).where(ScheduledAction.scheduled_provider.is_not(None))
            )
            == 0
        )


def test_migrate_refuses_without_inngest(configure: Any, tmp_path: Path) -> None:
    with pytest.raises(MigrationRefused, match="INNGEST_EVENT_KEY"):
        migrate_qstash_to_inngest(configure(), audit_log=tmp_path / "a.jsonl")


def test_migrate_refuses_when_inngest_is_unreachable(configure: Any, tmp_path: Path) -> None:
    settings = configure(**{**env.INNGEST_ENV, "INNGEST_BASE_URL": "http://127.0.0.1:9"})
    result = CliRunner().invoke(app, ["migrate", "qstash-to-inngest"])
    assert result.exit_code == 1  # a server away, as for every command
    assert "not reachable" in result.stderr and "127.0.0.1:9" in result.stderr
    assert result.stdout == ""
    assert settings.inngest_publishes


def test_migrate_without_inngest_configured_is_a_configuration_error(configure: Any) -> None:
    configure()
    result = CliRunner().invoke(app, ["migrate", "qstash-to-inngest"])
    assert result.exit_code == 2
    assert "INNGEST_EVENT_KEY" in result.stderr


def test_a_dry_run_counts_without_inngest(configure: Any, tmp_path: Path) -> None:
    configure(**{**env.INNGEST_ENV, "INNGEST_BASE_URL": "http://127.0.0.1:9"})
    audit = tmp_path / "a.jsonl"
    result = CliRunner().invoke(
        app, ["migrate", "qstash-to-inngest", "--dry-run", "--audit-log", str(audit)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("pending ") and "would send" in result.stdout
    assert not audit.exists()


def test_an_unreachable_dev_server_named_by_inngest_dev_is_named_so(configure: Any) -> None:
    configure(INNGEST_EVENT_KEY="local", INNGEST_DEV="http://127.0.0.1:9", INNGEST_BASE_URL=None)
    result = CliRunner().invoke(app, ["migrate", "qstash-to-inngest"])
    assert result.exit_code == 1
    assert "check INNGEST_DEV and that the server is up" in result.stderr


def test_with_inngest_dev_on_the_dev_servers_default_address_is_checked(
    configure: Any, tmp_path: Path
) -> None:
    settings = configure(INNGEST_EVENT_KEY=None, INNGEST_DEV="1", INNGEST_BASE_URL=None)

    with respx.mock(assert_all_called=True) as router:
        router.get("http://127.0.0.1:8288").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(MigrationRefused) as refused:
            migrate_qstash_to_inngest(settings, audit_log=tmp_path / "a.jsonl")

    assert "Inngest at http://127.0.0.1:8288 is not reachable" in str(refused.value)
    assert "check INNGEST_DEV" in str(refused.value)


def test_a_batch_size_over_inngests_limit_is_a_usage_error(configure: Any) -> None:
    configure(**env.INNGEST_ENV)
    result = CliRunner().invoke(app, ["migrate", "qstash-to-inngest", "--batch-size", "5001"])
    assert result.exit_code == 2
    assert "--batch-size" in result.stderr
