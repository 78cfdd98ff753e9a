"""`jobbridge bulk start | show | cancel`: a bulk run from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bridge.cli import app

runner = CliRunner()


def jobbridge(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_bulk_start_and_show_from_the_command_line(configure: Any, tmp_path: Path) -> None:
    configure(DATA_DIR=str(tmp_path), JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    jobbridge("demo")
    failed = jobbridge("bulk", "start", "--account", "demo@localhost")
    # Direct HTTP to nowhere: the publish fails, and the run is closed rather than left open.
    assert failed.exit_code == 1 and "could not publish" in failed.stderr
    configure(JOB_PROVIDER="celery")
    started = jobbridge("bulk", "start", "--account", "demo@localhost")
    job_id = json.loads(started.stdout)["jobId"]
    shown = json.loads(jobbridge("bulk", "show", job_id).stdout)
    assert shown["status"] in {"PENDING", "RUNNING", "COMPLETED"}
    assert set(shown) == {
        "jobId", "status", "pagesFetched", "totalEmails", "emailsQueued", "processed", "failed"
    }  # fmt: skip


def test_bulk_cancel_from_the_command_line(configure: Any, tmp_path: Path) -> None:
    configure(DATA_DIR=str(tmp_path), JOB_PROVIDER="celery")
    jobbridge("demo")
    job_id = json.loads(jobbridge("bulk", "start", "--account", "demo@localhost").stdout)["jobId"]

    cancelled = jobbridge("bulk", "cancel", job_id)
    again = jobbridge("bulk", "cancel", job_id)
    unknown = jobbridge("bulk", "cancel", "nope")

    assert json.loads(cancelled.stdout) == {"jobId": job_id, "status": "CANCELLED"}
    assert json.loads(jobbridge("bulk", "show", job_id).stdout)["status"] == "CANCELLED"
    assert again.exit_code == 1 and f"bulk job {job_id} is CANCELLED" in again.stderr
    assert unknown.exit_code == 1 and "no bulk job nope" in unknown.stderr
