"""A worker process killed with SIGKILL mid-task loses nothing: the task is redelivered,
and takes the action over once the dead run's lease has run out.

The worker is tests/support/fault_worker.py: the `tasks` app with leases of seconds and
archives held at a gate, so the test knows which pool process is mid-action."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from bridge.celery.producer import new_celery
from config import load_settings
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.conftest import Mailbox
from tests.support.services import Process, delete_redis_prefix
from tests.support.wait import wait_for


def test_task_killed_mid_run_is_redelivered_and_completes(
    mailbox: Mailbox, configure: Any, tmp_path: Path, log_dir: Path
) -> None:
    # This worker gets a Redis prefix of its own, so no other worker takes the task.
    prefix = f"jbcrash-{uuid.uuid4().hex[:8]}:"
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        **os.environ,
        "REDIS_KEY_PREFIX": prefix,
        "FAULT_GATE_DIR": str(gate),
        "FAULT_LEASE_SECONDS": "2",
        # The pool requeues the message itself: the visibility timeout plays no part.
        "FAULT_VISIBILITY_SECONDS": "600",
    }
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")  # publish nothing
    row = scheduled_actions.schedule(
        email_account_id=mailbox.account_id,
        action_type=ActionType.ARCHIVE,
        message_id=mailbox.keys[0],
        thread_id=mailbox.keys[0],
        scheduled_for=utcnow(),
    )
    producer: Celery = new_celery(load_settings(REDIS_KEY_PREFIX=prefix))
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.support.fault_worker",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    worker = Process("crashing-worker", command, env, log_dir)
    try:
        producer.send_task(
            "inbox-zero/scheduled-action.execute",
            kwargs={"payload": {"scheduledActionId": row.id}},
            task_id=f"crash-{row.id}",
        )
        entered = wait_for(
            lambda: sorted(gate.glob("entered.*")),
            timeout=60,
            what="the first attempt to start archiving",
        )
        os.kill(int(entered[0].read_text()), signal.SIGKILL)
        (gate / "open").touch()  # what runs next archives for real

        def completed() -> ScheduledAction | None:
            r = scheduled_actions.get(row.id)
            return r if r is not None and r.status is ActionStatus.COMPLETED else None

        done = wait_for(
            completed,
            timeout=60,
            what="the redelivered task to complete",
        )
    finally:
        worker.stop()
        producer.close()
        delete_redis_prefix(prefix)

    # A later attempt of the same delivery took the row over from the dead run's claim.
    assert done.claimed_by == f"celery:crash-{row.id}"
    assert done.claim_attempt is not None and done.claim_attempt >= 1
    assert done.execution_attempts == 2
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}
    assert "WorkerLostError" in worker.log()
