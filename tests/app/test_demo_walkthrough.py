"""The README's walkthrough, on the demo account and a real Celery worker: every job runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.store.db import session_scope
from tasks.jobs import bulk_process
from tasks.jobs.digest import is_digest_email
from tasks.mail.maildir import MaildirProvider
from tasks.models import (
    BulkJobStatus,
    BulkProcessJob,
    CleanupJob,
    CleanupJobStatus,
    CleanupThread,
    DigestItem,
    ScheduledAction,
    Sender,
)
from tests.support.wait import wait_for

runner = CliRunner()


def jobbridge(*args: str) -> Any:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.lstrip().startswith("{") else result.stdout


def count(model: Any, *where: Any) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_walkthrough_runs_every_job_on_the_demo_account(
    configure: Any, tmp_path: Path, worker: Any
) -> None:
    configure(DATA_DIR=str(tmp_path))
    jobbridge("demo")
    mail = MaildirProvider(tmp_path / "maildir" / "demo", "demo@localhost")

    # 1. Bulk-process the inbox: rules archive newsletters into the digest, label
    # receipts, mark notifications read and schedule their archive, reply to lunch.
    run = jobbridge("bulk", "start", "--account", "demo@localhost", "--include-read")

    def completed() -> BulkProcessJob | None:
        j = bulk_process.get(run["jobId"])
        return j if j is not None and j.status is BulkJobStatus.COMPLETED else None

    job = wait_for(
        completed,
        timeout=90,
        what="the bulk run",
    )
    # 28 threads; the ignored sender's one is left alone.
    assert (job.total_emails, job.emails_queued, job.processed + job.failed) == (28, 27, 27)
    assert len(mail.folder_keys("Archive")) >= 10  # newsletters and briefings
    assert count(ScheduledAction) == 5  # one delayed archive per notification
    wait_for(lambda: count(DigestItem) >= 10, timeout=60, what="ai.digest for each newsletter")
    assert any(
        mail.get_message(k).subject.startswith("Re: Lunch") for k in mail.folder_keys("Sent")
    )

    # 2. Categorize every sender in the inbox.
    queued = jobbridge("categorize", "--account", "demo@localhost")
    assert queued["jobs"] >= 1
    wait_for(
        lambda: count(Sender, Sender.category_id.is_not(None)) >= 3,
        timeout=60,
        what="senders to be categorized",
    )

    # 3. Clean threads older than 10 days.
    cleaning = jobbridge("clean", "--account", "demo@localhost", "--days-old", "10")
    assert cleaning["threadsQueued"] >= 1
    wait_for(
        lambda: count(CleanupJob, CleanupJob.status == CleanupJobStatus.COMPLETED) == 1,
        timeout=60,
        what="the cleaning run to complete",
    )
    assert count(CleanupThread) == cleaning["threadsQueued"]

    # 4. Send the digest now.
    jobbridge("digest", "--account", "demo@localhost")
    sent = wait_for(
        lambda: [
            m
            for k in mail.folder_keys("Sent")
            if is_digest_email((m := mail.get_message(k)).sender, "demo@localhost")
        ],
        timeout=60,
        what="the digest email",
    )
    assert sent[0].subject.startswith("Your digest:")
