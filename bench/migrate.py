"""Migration benchmark: 100,000 PENDING scheduled actions moved to Inngest, in one run.

    .venv/bin/python bench/migrate.py [--rows N] [--strict]

`jobbridge migrate qstash-to-inngest` runs as its own process (what an operator runs)
against PostgreSQL and a local process that answers like Inngest's event API. Measured:
its wall time, its peak memory (max RSS of the child), and how many requests reached
the event API. Baseline in the same run: the same events, prebuilt, POSTed to the same
sink in batches of 5,000 by plain httpx (the floor any migration pays).

Everything is its own and removed at the end: a PostgreSQL database, a Redis prefix
(unused, but the app wants one), the sink process, a temporary folder; loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from enqueue import (  # the sibling benchmark's helpers: sink, database, report
    EVENT_KEY,
    EventSink,
    Row,
    Run,
    clean_up,
    configure,
    create_database,
    print_table,
    say,
)

ROOT = Path(__file__).resolve().parents[1]
BATCH = 5_000
GOAL_SECONDS = 30.0
GOAL_MB = 200.0
MIGRATE_TIMEOUT = 600.0


def insert_rows(count: int) -> None:
    """PENDING actions, due over the next days: set-up, not measured."""
    from sqlalchemy import insert

    from bridge.store.db import session_scope
    from tasks.models import ActionStatus, ActionType, ScheduledAction, SchedulingStatus

    now = datetime.now(UTC)
    for start in range(0, count, 10_000):
        rows = [
            {
                "id": f"bench-{n:07d}",
                "email_account_id": "bench-account",
                "action_type": ActionType.ARCHIVE,
                "message_id": f"m{n}",
                "thread_id": f"t{n}",
                "scheduled_for": now + timedelta(minutes=n % 10_000),
                "status": ActionStatus.PENDING,
                "scheduling_status": SchedulingStatus.SCHEDULED,
                "scheduled_provider": "qstash",
                "execution_attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(start, min(count, start + 10_000))
        ]
        with session_scope() as session:
            session.execute(insert(ScheduledAction), rows)


def run_migration(audit: Path) -> tuple[float, float, str]:
    """The CLI in a child process: wall seconds, peak RSS in MB, its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "jobbridge"),
            "migrate",
            "qstash-to-inngest",
            "--batch-size",
            str(BATCH),
            "--audit-log",
            str(audit),
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: this is the first child.
    return seconds, max(peak_kb, before) / 1024, done.stdout


def raw_posts(sink: EventSink, count: int) -> float:
    import httpx

    events = [
        {
            "name": "inbox-zero/scheduled-action.execute",
            "id": f"raw-{n}",
            "data": {
                "scheduledActionId": f"bench-{n:07d}",
                "scheduledFor": "2026-12-01T00:00:00+00:00",
            },
        }
        for n in range(count)
    ]
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for start in range(0, count, BATCH):
            client.post(
                f"{sink.url}/e/{EVENT_KEY}", content=json.dumps(events[start : start + BATCH])
            )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000, help="PENDING actions to migrate")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row misses")
    args = parser.parse_args()
    rows = max(1, min(args.rows, 1_000_000))

    prefix = f"jbbench-{uuid.uuid4().hex[:8]}:"
    data_dir = Path(tempfile.mkdtemp(prefix="jobbridge-bench-migrate-"))
    sink = EventSink.start()
    database_url: str | None = None
    try:
        database_url = create_database()
        configure(Run(prefix, database_url, data_dir, sink))
        from tasks.schema import upgrade

        upgrade(database_url)
        say(f"inserting {rows:,} PENDING scheduled actions")
        insert_rows(rows)
        say("running `jobbridge migrate qstash-to-inngest`")
        seconds, peak_mb, output = run_migration(data_dir / "audit.jsonl")
        after_migrate = sink.stats()
        say("baseline: the same number of events POSTed by plain httpx")
        floor = raw_posts(sink, rows)
        audit_lines = sum(1 for _ in (data_dir / "audit.jsonl").open())
    finally:
        clean_up(sink, prefix, database_url, data_dir)

    requests, events = after_migrate["requests"], after_migrate["events"]
    expected_requests = -(-rows // BATCH)
    table = [
        Row(
            f"migrate {rows:,} rows: wall time",
            f"{seconds:.1f} s ({rows / seconds:,.0f} rows/s)",
            f"{floor:.1f} s raw POSTs",
            seconds / floor,
            f"< {GOAL_SECONDS:.0f} s",
            seconds < GOAL_SECONDS,
        ),
        Row(
            "migrate: peak memory (max RSS)",
            f"{peak_mb:.0f} MB",
            "-",
            peak_mb / GOAL_MB,
            f"< {GOAL_MB:.0f} MB",
            peak_mb < GOAL_MB,
        ),
        Row(
            "migrate: requests to the event API",
            f"{requests}",
            f"{expected_requests} ideal",
            requests / expected_requests,
            f"{expected_requests} or close",
            requests <= expected_requests + 1,
        ),
    ]
    notes = [
        f"events received {events:,} of {rows:,}; audit log lines {audit_lines:,}; "
        f"batch {BATCH:,} events a request",
        "the CLI runs as a child process (what an operator runs); peak memory is its max RSS",
        " ".join(line.strip() for line in output.splitlines() if "audit log" not in line),
    ]
    print_table(table, notes, title="jobbridge migration benchmark")
    ok = all(row.passed for row in table) and events == rows and audit_lines == rows
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
