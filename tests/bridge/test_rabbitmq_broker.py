"""Celery on RabbitMQ (BROKER_URL=amqp://...): the same jobs, the same guarantees.

Each test gets a virtual host of its own (tests/support/rabbitmq.py) and starts its own
workers on it, so nothing it publishes can reach another test's worker or the session's
Redis worker, and deleting the vhost at the end deletes every queue Celery declared.
The delivery ledger and the per-key limits stay on the session's Redis (REDIS_URL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bridge.celery.config import celery_config
from bridge.celery.deferred import release_due
from bridge.celery.producer import producer_app
from bridge.cli import app as cli
from bridge.cli.errors import explain
from bridge.errors import PublishError
from bridge.ops.probes import check_broker, check_redis_store
from bridge.ops.status import collect_status
from bridge.publishing import enqueue
from bridge.web.factory import create_app
from config import Settings
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, ScheduledAction, SchedulingStatus, utcnow
from tasks.scheduled_actions import ExecuteScheduledAction
from tests.conftest import Mailbox
from tests.contract.test_contract_scheduled_action import (
    completed,
    expected_state,
    final_state,
    schedule_archive,
)
from tests.support.actions import insert_action
from tests.support.commands import run
from tests.support.rabbitmq import QueueDepth, Vhost, rabbitmq_vhost
from tests.support.services import Process, free_port, start_worker
from tests.support.wait import wait_for

EXECUTE = scheduled_actions.execute_scheduled_action.event


@pytest.fixture
def vhost() -> Iterator[Vhost]:
    with rabbitmq_vhost() as made:
        yield made


@pytest.fixture
def on_rabbitmq(vhost: Vhost, configure: Any) -> Iterator[Settings]:
    """This process publishes to the test's vhost (Celery is the provider the session's
    environment chooses)."""
    settings: Settings = configure(BROKER_URL=vhost.url)
    assert settings.broker_kind == "rabbitmq"
    yield settings
    producer_app(settings).close()  # its pooled connections, before the vhost goes


@pytest.fixture
def rabbitmq_worker(vhost: Vhost, log_dir: Path) -> Iterator[Process]:
    """The `tasks` app's worker, as the session's, on the test's vhost."""
    worker = start_worker({**os.environ, "BROKER_URL": vhost.url}, log_dir, "rabbitmq-worker")
    yield worker
    worker.stop()


def row_of(action_id: str) -> ScheduledAction:
    row = scheduled_actions.get(action_id)
    assert row is not None
    return row


def send_now(settings: Settings, action_id: str, task_id: str) -> None:
    """The execute job for a row, published at once whatever the row's time."""
    producer_app(settings).send_task(
        EXECUTE, kwargs={"payload": {"scheduledActionId": action_id}}, task_id=task_id
    )


# --- configuration -------------------------------------------------------------------


def test_on_rabbitmq_publishes_are_confirmed_and_no_redis_transport_option_is_set(
    configure: Any,
) -> None:
    settings = configure(BROKER_URL="amqp://rabbitmq.example.com//", REDIS_KEY_PREFIX="t-a:")

    config = celery_config(settings)

    assert config["broker_url"] == "amqp://rabbitmq.example.com//"
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert (config["task_acks_late"], config["task_reject_on_worker_lost"]) == (True, True)


# --- the scheduled-action contract -------------------------------------------------


def test_celery_worker_on_rabbitmq_delivers_scheduled_archive(
    mailbox: Mailbox, on_rabbitmq: Settings, rabbitmq_worker: Process
) -> None:
    row = schedule_archive(mailbox)

    assert (row.scheduled_provider, row.scheduling_status) == ("celery", SchedulingStatus.SCHEDULED)
    assert final_state(mailbox, row.id) == expected_state(mailbox)


# --- retries -----------------------------------------------------------------------


def test_a_job_that_asks_to_retry_later_comes_back_through_rabbitmq_and_completes(
    mailbox: Mailbox, on_rabbitmq: Settings, rabbitmq_worker: Process
) -> None:
    # Delivered 3 s early, the job raises RetryLater("not due until ..."), and Celery
    # publishes the retry to RabbitMQ with that countdown.
    row = insert_action(
        mailbox.account_id,
        ActionType.ARCHIVE,
        mailbox.keys[0],
        scheduled_for=utcnow() + timedelta(seconds=3),
    )

    send_now(on_rabbitmq, row.id, task_id=f"early-{row.id}")

    assert final_state(mailbox, row.id) == expected_state(mailbox)
    assert row_of(row.id).execution_attempts == 1  # the early run executed nothing
    assert "not due until" in rabbitmq_worker.log()


def test_a_transient_failure_is_retried_through_rabbitmq_and_completes(
    mailbox: Mailbox, on_rabbitmq: Settings, rabbitmq_worker: Process
) -> None:
    # A file where the Maildir++ Archive folder (".Archive") goes: creating the folder
    # fails with an OSError, transient to the job, until the test removes the file.
    blocker = mailbox.path / ".Archive"
    blocker.write_text("not a folder")
    row = schedule_archive(mailbox)

    def failed() -> list[ScheduledAction]:
        found = row_of(row.id)
        return [found] if found.error is not None else []

    (failed_once,) = wait_for(failed, timeout=30, what="the first attempt to fail")
    blocker.unlink()

    assert (failed_once.status, failed_once.execution_attempts) == (ActionStatus.PENDING, 1)
    # The retry waits out its backoff (10 s) as an ETA message in RabbitMQ.
    assert final_state(mailbox, row.id) == expected_state(mailbox)
    assert row_of(row.id).execution_attempts == 2


# --- the ETA horizon ---------------------------------------------------------------


def test_within_the_horizon_the_worker_holds_the_job_unacked_until_it_is_due(
    mailbox: Mailbox, vhost: Vhost, on_rabbitmq: Settings, rabbitmq_worker: Process
) -> None:
    # Why the horizon is capped on RabbitMQ: from its publication to its end the message
    # is an unacked delivery, which RabbitMQ's consumer_timeout bounds.
    row = schedule_archive(mailbox, seconds_ahead=6)

    wait_for(
        lambda: vhost.depth() == QueueDepth(ready=0, unacked=1),
        timeout=5,
        interval=0.2,
        what="the worker to take the ETA message",
    )

    assert completed(row.id) is None and utcnow() < row.scheduled_for
    assert final_state(mailbox, row.id) == expected_state(mailbox)
    wait_for(lambda: vhost.depth() == QueueDepth(0, 0), timeout=10, what="the ack")


def test_beyond_the_horizon_the_job_waits_in_the_database_until_released(
    mailbox: Mailbox, vhost: Vhost, configure: Any, rabbitmq_worker: Process
) -> None:
    settings = configure(BROKER_URL=vhost.url, CELERY_ETA_HORIZON_SECONDS="2")
    try:
        row = schedule_archive(mailbox, seconds_ahead=6)

        assert row.scheduled_id == f"deferred:scheduled-action-{row.id}"
        assert vhost.depth() == QueueDepth(0, 0)  # nothing in RabbitMQ, held by no one
        # What the `celery.release-deferred` cron does every minute, asked more often:
        # the job goes to RabbitMQ once it is due within the horizon, not before.
        wait_for(lambda: release_due([EXECUTE]) == 1, timeout=10, interval=0.2, what="the release")
        assert row.scheduled_for - utcnow() <= timedelta(seconds=2)
        assert final_state(mailbox, row.id) == expected_state(mailbox)
    finally:
        producer_app(settings).close()


# --- a worker killed mid-job -------------------------------------------------------


@pytest.mark.parametrize("killed", ["pool process", "whole worker"])
def test_a_job_whose_worker_is_killed_is_redelivered_and_completes_once(
    killed: str,
    mailbox: Mailbox,
    vhost: Vhost,
    on_rabbitmq: Settings,
    tmp_path: Path,
    log_dir: Path,
) -> None:
    # tests/support/fault_worker.py: the `tasks` app with leases of 2 s and archives held
    # at a gate, so the test knows the job is mid-action, past its claim.
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        **os.environ,
        "BROKER_URL": vhost.url,
        "FAULT_GATE_DIR": str(gate),
        "FAULT_LEASE_SECONDS": "2",
        "FAULT_VISIBILITY_SECONDS": "600",  # Redis's; RabbitMQ requeues on reject or close
    }
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    workers = [start_worker(env, log_dir, "rabbitmq-doomed", 1, "tests.support.fault_worker")]
    try:
        send_now(on_rabbitmq, row.id, task_id=f"crash-{row.id}")
        entered = wait_for(
            lambda: sorted(gate.glob("entered.*")), timeout=30, what="the job to start archiving"
        )
        if killed == "pool process":
            # The worker sees its child die and rejects the message back to the queue.
            os.kill(int(entered[0].read_text()), signal.SIGKILL)
        else:
            # The connection drops with the worker: RabbitMQ requeues what it held.
            os.killpg(workers[0].popen.pid, signal.SIGKILL)
            workers.append(
                start_worker(env, log_dir, "rabbitmq-heir", 1, "tests.support.fault_worker")
            )
        (gate / "open").touch()  # what runs next archives for real

        done = wait_for(
            lambda: completed(row.id), timeout=60, what="the redelivered job to complete"
        )
    finally:
        for worker in workers:
            worker.stop()

    # A later attempt of the same delivery took the row over from the dead run's claim.
    assert done.claimed_by == f"celery:crash-{row.id}" and done.claim_attempt >= 1
    assert done.execution_attempts == 2
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}
    assert mailbox.folder_keys("INBOX") == set(mailbox.keys[1:])


# --- what the operator sees --------------------------------------------------------


def test_the_broker_probe_logs_in_to_the_vhost_and_names_rabbitmq(
    vhost: Vhost, on_rabbitmq: Settings
) -> None:
    check = check_broker(on_rabbitmq, timeout=2)

    assert (check.name, check.state) == ("rabbitmq", "up")
    assert check.detail == f"rabbitmq 127.0.0.1:5672 vhost {vhost.name}"


def test_the_broker_probe_says_down_without_the_password_when_the_login_is_refused(
    vhost: Vhost, configure: Any
) -> None:
    settings = configure(BROKER_URL=vhost.url.replace(":guest@", ":not-the-password@"))

    check = check_broker(settings, timeout=2)

    assert (check.name, check.state, check.error_type) == ("rabbitmq", "DOWN", "AccessRefused")
    assert "not-the-password" not in check.detail


def run_celery(command: str, broker_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    celery = [sys.executable, "-m", "celery", "-A", "tasks", command]
    return run(celery, tmp_path, BROKER_URL=broker_url, DATA_DIR=str(tmp_path))


@pytest.mark.parametrize("command", ["worker", "beat"])
@pytest.mark.parametrize(
    ("broken", "refusal"),
    [(":not-the-password@", "ACCESS_REFUSED"), ("/", "NOT_ALLOWED")],
    ids=["wrong-password", "missing-vhost"],
)
def test_a_worker_or_beat_whose_login_rabbitmq_refuses_stops_in_two_plain_lines(
    command: str, broken: str, refusal: str, vhost: Vhost, tmp_path: Path
) -> None:
    missing_vhost = broken == "/"
    url = f"{vhost.url}-missing" if missing_vhost else vhost.url.replace(":guest@", broken)

    done = run_celery(command, url, tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "not-the-password" not in output
    assert "cannot log in to RabbitMQ at amqp://guest:***@127.0.0.1:5672/" in output
    assert refusal in output
    assert "fix: correct the user, password or virtual host in BROKER_URL" in output


def test_status_checks_rabbitmq_and_the_redis_the_ledger_and_limits_use(
    on_rabbitmq: Settings,
) -> None:
    report = collect_status(on_rabbitmq, timeout=2, worker_timeout=0.5)

    states = {check.name: check.state for check in report.checks}
    assert (states["rabbitmq"], states["redis"]) == ("up", "up")
    assert report.healthy


def test_without_redis_url_status_says_where_the_ledger_is_and_that_limits_are_off(
    configure: Any,
) -> None:
    settings = configure(BROKER_URL="amqp://rabbitmq.example.com//", REDIS_URL=None)

    check = check_redis_store(settings, timeout=2)

    assert check is not None and (check.name, check.state) == ("redis", "not configured")
    assert "ledger" in check.detail and "in the database" in check.detail
    assert "limits (concurrency, throttle) not enforced" in check.detail


def test_config_shows_the_rabbitmq_broker_and_why_without_the_password(
    configure: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # no wrapped cells
    monkeypatch.chdir(tmp_path)  # no .env
    configure(BROKER_URL="amqp://jobs:rabbit-secret@rabbitmq.example.com:5672/jobbridge")

    output = CliRunner().invoke(cli, ["config"]).output

    assert "rabbit-secret" not in output
    assert "rabbitmq amqp://jobs:***@rabbitmq.example.com:5672/jobbridge" in output
    assert "BROKER_URL set (RabbitMQ), REDIS_URL for the ledger and limits" in output


def test_a_publish_rabbitmq_refuses_says_to_start_it_or_correct_broker_url(
    configure: Any,
) -> None:
    configure(BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//")  # nothing listens

    with pytest.raises(PublishError) as caught:
        enqueue(
            scheduled_actions.execute_scheduled_action,
            ExecuteScheduledAction(scheduled_action_id="action-1"),
        )

    status, lines = explain(caught.value)
    assert status == 1
    assert lines.splitlines()[-1].startswith(
        "fix: start RabbitMQ, or correct BROKER_URL (user, password, virtual host)"
    )


def test_health_names_rabbitmq_as_the_broker_and_checks_redis_apart(
    on_rabbitmq: Settings,
) -> None:
    with TestClient(create_app(on_rabbitmq)) as client:
        body = client.get("/healthz").json()

    assert body["ok"] is True
    assert body["broker"] == {
        "ok": True,
        "latency_ms": body["broker"]["latency_ms"],
        "kind": "rabbitmq",
    }
    assert body["redis"]["ok"] is True  # the ledger's and the limits' Redis
