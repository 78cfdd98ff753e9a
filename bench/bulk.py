"""Bulk-process benchmark: whole `bulk_process` runs on Celery, on the Maildir and the IMAP
adapter, at several mailbox sizes, against a minimal reference loop.

    .venv/bin/python bench/bulk.py [--sizes 1000,5000,20000] [--adapter maildir|imap|both]
                                   [--concurrency 2] [--timeout 1800] [--strict]

Each run: `bulk_process.start` over an inbox of N messages, one thread each, all dated
within the job's window, processed by ONE `celery -A tasks worker --pool prefork
--concurrency C`, started fresh for the run (its per-process mailbox indexes start
empty) and ready before start(), until the job row says COMPLETED. The Maildir inbox is
written as files, the IMAP one into a private Dovecot's Maildir before its user's first
login (`tests/support/dovecot.py`), both as set-up, outside the timing.

Rows (each against a baseline measured in this same run):

  a) Maildir, each size: bulk_process's rate (messages from start() to the row's
     completed_at) against the REFERENCE LOOP's over the same Maildir. Goal >= 0.5x.
  b) each adapter: the worker's CPU per message (user+sys of the worker's main and pool
     processes, from ready to COMPLETED) at the largest size against the smallest.
     Goal <= 1.3x: lookups by key or by index, not by scanning the mailbox.
  c) each run: the pool's busy share, the share of its processes' time (concurrency x
     the run's wall time) they were not waiting for work: a process is waiting when it
     runs no task (the worker's log: each task's end and runtime) while the broker queue
     is empty (sampled every 10 ms). Goal >= 90%: the fetcher is never what the pool
     waits for. The share spent running tasks is shown too; the rest is Celery handing a
     task over (with prefetch 1 and late acks, a process takes its next message only
     once the last one is acknowledged), which no order of publishing can save.

Beside them, in the notes: Celery's ceiling on this machine, measured in this same run
by the same worker configuration draining a raw Celery no-op task (bench/receivers.py's
drain): what a path that ran one Celery task per message could reach at most. A bulk run
goes past it by running a page's messages of an account as one batch task (docs/JOBS.md,
bridge/celery/batches.py); the notes say how far the goal's rate is from it, and how many
batches and single worker tasks ran.

The REFERENCE LOOP is what the work needs, written with the standard library alone (and
psycopg for the one INSERT): `mailbox.Maildir` over the inbox, each key's bytes by key
(`get_bytes`), parsed with `email` under the compat32 policy (as the adapters do: the
default policy's header objects cost eight times the parse), the bench's three rule
patterns tested on the Subject and From decoded with `email.header` (case-insensitive
contains, as the rules engine does), and one INSERT of the result per message (executed_rule,
the table the app records in, autocommit) for an account of its own. It makes no mail
effect (`mailbox.Maildir` lists the whole folder again for each message it changes, so
an effect would measure `mailbox`, not the work): the bulk side does more than it,
never less. It reads the bulk run's own Maildir, before the run changes it: same run, same
messages. It replaces the earlier baseline, an in-process `get_message` + `apply_rules`
loop: that measured the app against itself (its per-lookup folder scan was on both sides,
so the ratio hid it), where the reference measures against the work.

The mix: 30% newsletters (rule 1 archives them), 20% receipts (rule 2 labels them), 20%
notifications (rule 3 marks them read), 30% personal mail no rule matches. Each side is
checked to have had exactly those results (and the bulk run the effects: the Archive
folder's size), and the job row's totals to add up.

The default runs the Maildir adapter at 1,000, 5,000 and 20,000 messages and the IMAP
adapter at 1,000 and 5,000: about 11 minutes on a 2-CPU machine. `--sizes 1000,20000
--adapter imap` measures the IMAP adapter at 20,000 (about 50 minutes more): an IMAP
message costs the worker more CPU than a Maildir one (each message is fetched and
changed over the network, on a connection each worker process keeps between its jobs),
and Dovecot takes time in proportion to the folder to select a Maildir folder, so the
wall time per message grows with the folder there while the worker's CPU barely does.
`--sizes` applies to every adapter run.

Everything it uses is its own and removed at the end, on failure too: a Redis key
prefix, a PostgreSQL database, a temporary directory (Maildirs, Dovecot, worker logs),
the Dovecot and the workers; all on loopback. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import mailbox
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

# The shared plumbing of bench/enqueue.py (stdlib only at import; this directory is
# sys.path[0] when the script runs, and mypy's search path when it checks this file).
from enqueue import (
    CONTROLLED_ENV,
    REDIS_URL,
    Row,
    create_database,
    delete_prefix,
    drop_database,
    print_table,
    run_cleanup,
    say,
)

if TYPE_CHECKING:
    from tasks.models import BulkProcessJob

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = {"maildir": (1_000, 5_000, 20_000), "imap": (1_000, 5_000)}
ADAPTERS = ("maildir", "imap")
MAX_MESSAGES = 100_000
GOAL_RATIO = 0.50
GOAL_FLAT = 1.30
GOAL_BUSY = 0.90
WORKER_START_SECONDS = 60.0
POLL_SECONDS = 0.05
_SAMPLE_SECONDS = 0.01
STOP_SECONDS = 15.0
CEILING_JOBS = 2_000  # raw no-op tasks a drain, two drains
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"  # the IMAP accounts' password, for the worker

# (kind, share of messages in tenths): rule conditions below match exactly one kind each.
MIX = (("newsletter", 3), ("receipt", 2), ("notification", 2), ("personal", 3))
RULE_FOR_KIND = {
    "newsletter": "archive newsletters",
    "receipt": "label receipts",
    "notification": "mark-read notifications",
}
# In order of position: (kind, condition field, contains pattern, action type).
RULES = (
    ("newsletter", "subject_pattern", "newsletter", "ARCHIVE"),
    ("receipt", "subject_pattern", "receipt", "LABEL"),
    ("notification", "from_pattern", "notifications@", "MARK_READ"),
)
NO_MATCH = "(no match)"
RECEIPTS_LABEL = "Receipts"
BODY_FILLER = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.\n"
) * 3


def kind_of(number: int) -> str:
    slot = number % 10
    for kind, tenths in MIX:
        if slot < tenths:
            return kind
        slot -= tenths
    raise AssertionError("MIX must add up to ten tenths")


def expected_results(messages: int) -> Counter[str]:
    """How many messages each rule (or no rule) should take, by rule name."""
    counts: Counter[str] = Counter()
    for number in range(messages):
        counts[RULE_FOR_KIND.get(kind_of(number), NO_MATCH)] += 1
    return counts


# --- Environment ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    prefix: str
    database_url: str
    data_dir: Path


def configure(run: Run) -> None:
    """Celery on our own Redis prefix, our own database; before `tasks` is imported
    (the Celery app reads REDIS_URL and REDIS_KEY_PREFIX once, at import)."""
    for name in CONTROLLED_ENV:
        os.environ.pop(name, None)
    os.environ.update(
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=run.prefix,
        DATABASE_URL=run.database_url,
        DATA_DIR=str(run.data_dir),
        JOB_PROVIDER="celery",
        JOB_FAILOVER="false",
    )


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A terminated bench still cleans up: SIGTERM unwinds like Ctrl-C."""
    raise SystemExit(f"terminated by signal {signum}")


# --- The worker -------------------------------------------------------------------------


class Worker:
    """One `celery -A tasks worker --pool prefork` in its own session, logging to a file."""

    def __init__(self, concurrency: int, log_path: Path) -> None:
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",  # as `jobbridge dev` runs it; also gives each task's end and runtime
            "--hostname",
            f"bench-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(os.environ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, never by name
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_START_SECONDS
        while " ready." not in self.log():
            if not self.alive():
                raise RuntimeError(f"the worker exited:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not ready in {WORKER_START_SECONDS:.0f}s")
            time.sleep(0.1)

    def cpu_seconds(self) -> tuple[float, float]:
        """User+sys CPU of every live process of the worker's group, and of its main
        process alone (the rest is the pool's), from /proc: read at ready and at the
        end, their difference is the run's alone."""
        ticks = main = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, pgrp, ...
            if int(fields[2]) == self.process.pid:
                used = int(fields[11]) + int(fields[12])  # utime, stime
                ticks += used
                main += used if int(entry.name) == self.process.pid else 0
        tick = os.sysconf("SC_CLK_TCK")
        return ticks / tick, main / tick

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the main process: running tasks finish), then SIGKILL
        to whatever is left of its process group."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_SECONDS)
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.process.pid, signal.SIGKILL)  # our own group only
        self.process.wait(5)
        self._log.close()


_TASK_LINE = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): \w+/(?P<process>[^\]]+)\] "
    r"Task (?P<name>\S+?)\[[^\]]+\] (?:succeeded in (?P<seconds>[0-9.eE+-]+)s|(?P<other>\w+))",
    re.MULTILINE,
)


@dataclass
class TaskTimes:
    """What the worker's INFO log says about each task it ran: (end, runtime) by name."""

    runs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    other: Counter[str] = field(default_factory=Counter)  # retry, raised, ... by name:state

    @classmethod
    def parse(cls, log: str) -> TaskTimes:
        times = cls()
        for match in _TASK_LINE.finditer(log):
            name = match["name"].rsplit(".", 1)[-1]
            if match["seconds"] is not None:
                # The log's local time, to the millisecond: when the task ended.
                end = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                times.runs.setdefault(name, []).append((end, float(match["seconds"])))
            elif match["other"] != "received":
                times.other[f"{name}:{match['other']}"] += 1
        return times

    def busy(self, start: float, end: float, processes: int) -> float:
        """The share of processes x [start, end] spent running tasks."""
        inside = sum(
            max(0.0, min(finish, end) - max(finish - seconds, start))
            for runs in self.runs.values()
            for finish, seconds in runs
        )
        return inside / (processes * (end - start)) if end > start else 0.0

    def describe(self, name: str) -> str:
        values = [seconds for _, seconds in self.runs.get(name, [])]
        if not values:
            return f"{name}: no runs logged"
        return (
            f"{name} {len(values):,} runs, mean {statistics.mean(values) * 1000:,.1f} ms, "
            f"max {max(values) * 1000:,.0f} ms"
        )


class QueueSampler:
    """The broker queue's length every _SAMPLE_SECONDS, in a thread, while a run goes on:
    a pool process idle while the queue is empty waits for work (for the fetcher); one
    idle while messages wait is handing a task over (Celery's own per-task cost)."""

    def __init__(self, prefix: str) -> None:
        import redis

        self._client = redis.Redis.from_url(REDIS_URL)
        self._key = f"{prefix}celery"  # the default queue's list, under the key prefix
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            self.samples.append((time.time(), int(self._client.llen(self._key))))

    def starved(self, times: TaskTimes, start: float, end: float, processes: int) -> float:
        """The share of processes x [start, end] idle with nothing queued."""
        intervals = [
            (finish - seconds, finish) for runs in times.runs.values() for finish, seconds in runs
        ]
        idle = 0
        inside = [(at, length) for at, length in self.samples if start <= at <= end]
        for at, length in inside:
            if length == 0:
                running = sum(1 for begin, finish in intervals if begin <= at < finish)
                idle += max(0, processes - running)
        return idle / (processes * len(inside)) if inside else 0.0


# --- Mail, accounts and rules -------------------------------------------------------------


def make_message(number: int, to: str, date: datetime) -> bytes:
    kind = kind_of(number)
    sender, subject = {
        "newsletter": (f"news{number % 37}@lists.example.test", f"Weekly newsletter #{number}"),
        "receipt": (f"billing{number % 11}@shop.example.test", f"Your receipt for order {number}"),
        "notification": ("notifications@service.example.test", f"New sign-in #{number}"),
        "personal": (f"friend{number % 97}@example.test", f"Lunch on Friday? ({number})"),
    }[kind]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = make_msgid(f"bench{number}")  # its own thread
    message.set_content(f"Message {number} ({kind}).\n\n{BODY_FILLER}")
    return message.as_bytes()


def inbox(size: int, to: str, now: datetime) -> Iterator[tuple[bytes, float, bool]]:
    """(message, arrival time, read): newest first, at most five seconds apart and all
    within the last 12 hours (the job's window is the last day), all unread."""
    step = min(5.0, 12 * 3600 / size)
    for number in range(size):
        date = now - timedelta(seconds=step * (number + 1))
        yield make_message(number, to, date), date.timestamp(), False


def write_maildir(root: Path, size: int, to: str, now: datetime) -> None:
    """The inbox as a Maildir's new/ files, as deliveries leave them (mailbox.add's ~2 ms
    a message would make set-up the longest part)."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for number, (data, arrived, _) in enumerate(inbox(size, to, now)):
        path = root / "new" / f"{int(arrived)}.M{number}P{os.getpid()}.bench"
        path.write_bytes(data)
        os.utime(path, (arrived, arrived))


def add_account(email_address: str, provider: str, settings: dict[str, Any]) -> str:
    """An account of the adapter's kind with the three rules; its id."""
    from bridge.store.db import session_scope
    from tasks.models import EmailAccount, MailProviderKind, Rule, RuleAction, RuleActionType

    with session_scope() as session:
        account = EmailAccount(
            email=email_address, provider=MailProviderKind(provider), provider_settings=settings
        )
        session.add(account)
        session.flush()
        for position, (kind, field_name, pattern, action_name) in enumerate(RULES):
            rule = Rule(
                email_account_id=account.id,
                name=RULE_FOR_KIND[kind],
                position=position,
                **{field_name: pattern},
            )
            action = RuleActionType(action_name)
            label_name = RECEIPTS_LABEL if action is RuleActionType.LABEL else None
            rule.actions = [RuleAction(position=0, type=action, label=label_name)]
            session.add(rule)
        return account.id


@dataclass(frozen=True)
class Mailbox:
    adapter: str
    size: int
    account_id: str
    email: str
    path: Path | None  # the Maildir (maildir)
    imap: dict[str, Any] | None  # the account's imap settings (imap)


def rule_results(account_id: str) -> Counter[str]:
    """Rule results recorded for the account, by rule name."""
    from sqlalchemy import func, select

    from bridge.store.db import session_scope
    from tasks.models import ExecutedRule, Rule

    with session_scope() as session:
        rows = session.execute(
            select(Rule.name, func.count())
            .select_from(ExecutedRule)
            .outerjoin(Rule, Rule.id == ExecutedRule.rule_id)
            .where(ExecutedRule.email_account_id == account_id)
            .group_by(Rule.name)
        ).all()
    return Counter({name or NO_MATCH: int(count) for name, count in rows})


def archived(box: Mailbox) -> int:
    """How many messages the Archive folder holds."""
    if box.path is not None:
        return len(mailbox.Maildir(box.path, create=False).get_folder("Archive").keys())
    from imapclient import IMAPClient

    assert box.imap is not None
    with IMAPClient(box.imap["host"], port=box.imap["port"], ssl=False) as client:
        client.login(box.imap["username"], os.environ[PASSWORD_ENV])
        return int(client.folder_status("Archive", [b"MESSAGES"])[b"MESSAGES"])


def results_ok(account_id: str, size: int, box: Mailbox | None) -> tuple[bool, str]:
    """Whether the account has exactly the expected rule results (and, given the mailbox,
    the Archive folder the newsletters), described."""
    counts, want = rule_results(account_id), expected_results(size)
    ok = counts == want
    shown = ", ".join(f"{name} {counts.get(name, 0):,}" for name in sorted(want))
    if box is not None:
        folder = archived(box)
        ok = ok and folder == want[RULE_FOR_KIND["newsletter"]]
        shown += f"; Archive {folder:,}"
    return ok, shown + ("" if ok else f" (expected {dict(want)})")


# --- The reference loop ---------------------------------------------------------------------


@dataclass
class Reference:
    size: int
    seconds: float
    cpu_seconds: float
    results: str
    correct: bool

    @property
    def rate(self) -> float:
        return self.size / self.seconds


def decoded(value: str | None) -> str:
    """A raw header value as text, RFC 2047 words decoded."""
    return str(make_header(decode_header(value))) if value else ""


def run_reference(box: Mailbox, database_url: str) -> Reference:
    """The minimal loop (see the module's docstring), for an account of its own."""
    import psycopg

    assert box.path is not None
    account_id = add_account(f"ref-{box.email}", "maildir", {"path": str(box.path)})
    plain_url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    say(f"reference: {box.size:,} messages")
    with psycopg.connect(plain_url, autocommit=True) as connection:
        rule_ids: dict[str, str] = dict(
            connection.execute(
                "SELECT name, id FROM rule WHERE email_account_id = %s", (account_id,)
            ).fetchall()
        )
        cpu, started = time.process_time(), time.perf_counter()
        folder = mailbox.Maildir(box.path, create=False)
        for key in sorted(folder.keys()):
            message = email.message_from_bytes(folder.get_bytes(key), policy=policy.compat32)
            texts = {
                "subject_pattern": decoded(message["subject"]).lower(),
                "from_pattern": decoded(message["from"]).lower(),
            }
            rule = next(
                (RULE_FOR_KIND[kind] for kind, on, pattern, _ in RULES if pattern in texts[on]),
                None,
            )
            connection.execute(
                "INSERT INTO executed_rule (id, email_account_id, rule_id, message_id, "
                "thread_id, status, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    uuid.uuid4().hex,
                    account_id,
                    rule_ids.get(rule) if rule else None,
                    key,
                    str(message["message-id"] or key),
                    "APPLIED" if rule else "NO_MATCH",
                    datetime.now(UTC),
                ),
            )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    correct, described = results_ok(account_id, box.size, None)
    say(f"reference: {box.size / seconds:,.0f} msg/s")
    return Reference(box.size, seconds, cpu_seconds, described, correct)


# --- A bulk run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Busy:
    """How the pool's processes spent the run: running tasks, and idle with nothing
    queued (waiting for work); the rest went to handing tasks over."""

    running: float
    starved: float

    @property
    def not_waiting(self) -> float:
        return 1.0 - self.starved


@dataclass
class BulkRun:
    adapter: str
    size: int
    job: BulkProcessJob | None
    seconds: float
    completed: bool
    cpu_seconds: float
    main_cpu_seconds: float  # of cpu_seconds, the worker's main process (Celery's consumer)
    times: TaskTimes
    busy: Busy
    results: str
    correct: bool

    @property
    def rate(self) -> float:
        processed = self.job.processed if self.job is not None else 0
        return processed / self.seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return self.cpu_seconds / self.size * 1000

    def totals_add_up(self) -> bool:
        job = self.job
        return (
            job is not None
            and job.processed + job.failed == job.emails_queued == job.total_emails == self.size
        )

    @property
    def good(self) -> bool:
        return self.completed and self.totals_add_up() and self.correct


def run_bulk(box: Mailbox, concurrency: int, timeout: float, log_path: Path) -> BulkRun:
    """start() -> COMPLETED on one fresh prefork worker, stopped before returning."""
    from tasks.jobs import bulk_process
    from tasks.models import BulkJobStatus, utcnow

    worker = Worker(concurrency, log_path)
    job: BulkProcessJob | None = None
    label = f"{box.adapter} {box.size:,}"
    try:
        worker.wait_ready()
        cpu_before, main_before = worker.cpu_seconds()
        say(f"{label}: worker ready (prefork, concurrency {concurrency}); starting the job")
        with QueueSampler(os.environ["REDIS_KEY_PREFIX"]) as queue:
            started_at = utcnow()
            started = time.perf_counter()
            job = bulk_process.start(box.account_id, started_at - timedelta(days=1), None, False)
            job = wait_for_the_end(job.id, worker, started, timeout, label)
            polled = time.perf_counter() - started
        cpu_after, main_after = worker.cpu_seconds()
        cpu_seconds, main_seconds = cpu_after - cpu_before, main_after - main_before
    finally:
        worker.stop()
    completed = job is not None and job.status is BulkJobStatus.COMPLETED
    # The row's own completion moment (stamped by the worker, same host clock), so the
    # poll interval does not count; the poll's figure if the job did not complete.
    seconds = polled
    if completed and job is not None and job.completed_at is not None:
        seconds = (job.completed_at - started_at).total_seconds()
    times = TaskTimes.parse(worker.log())
    start, end = started_at.timestamp(), started_at.timestamp() + seconds
    busy = Busy(times.busy(start, end, concurrency), queue.starved(times, start, end, concurrency))
    correct, described = results_ok(box.account_id, box.size, box)
    say(
        f"{label}: {job.status.value if job else 'missing'} after {seconds:.1f}s, running "
        f"{busy.running:.0%}, waiting for work {busy.starved:.0%}"
    )
    return BulkRun(
        box.adapter,
        box.size,
        job,
        seconds,
        completed,
        cpu_seconds,
        main_seconds,
        times,
        busy,
        described,
        correct,
    )


def wait_for_the_end(
    job_id: str, worker: Worker, started: float, timeout: float, label: str
) -> BulkProcessJob | None:
    """The job row once it is no longer open, or as it is when the time is up or the
    worker died."""
    from tasks.jobs import bulk_process
    from tasks.models import BulkJobStatus

    last_said = started
    while True:
        job = bulk_process.get(job_id)
        if job is None or job.status not in (BulkJobStatus.PENDING, BulkJobStatus.RUNNING):
            return job
        now = time.perf_counter()
        if now > started + timeout or not worker.alive():
            say(f"{label}: {'timed out' if worker.alive() else 'the worker exited'}")
            return job
        if now - last_said >= 15:
            last_said = now
            say(f"{label}: {now - started:.0f}s, processed {job.processed:,}")
        time.sleep(POLL_SECONDS)


# --- Set-up -------------------------------------------------------------------------------


class Mailboxes:
    """Makes each run's inbox and account: a Maildir, or a Dovecot user (one Dovecot for
    the whole bench, started on first use)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.dovecot: Any = None
        self.password = secrets.token_urlsafe(12)
        os.environ[PASSWORD_ENV] = self.password  # the worker inherits it

    def make(self, adapter: str, size: int) -> Mailbox:
        from tasks.models import utcnow

        label = f"{adapter}-{size}-{uuid.uuid4().hex[:6]}"
        address = f"{label}@bench.example.test"
        now = utcnow()
        started = time.perf_counter()
        if adapter == "maildir":
            path = self.data_dir / "maildir" / label
            write_maildir(path, size, address, now)
            account_id = add_account(address, "maildir", {"path": str(path)})
            box = Mailbox(adapter, size, account_id, address, path, None)
        else:
            imap = self._imap_user(label, size, address, now)
            account_id = add_account(address, "imap", {"imap": imap})
            box = Mailbox(adapter, size, account_id, address, None, imap)
        say(f"{adapter} {size:,}: inbox written in {time.perf_counter() - started:.1f}s (set-up)")
        # A directory changed in the last 2 s is listed again by every lookup of the
        # Maildir adapter (its mtime cannot be trusted yet): not what a run starts from.
        time.sleep(2.1)
        return box

    def _imap_user(self, user: str, size: int, address: str, now: datetime) -> dict[str, Any]:
        """A Dovecot user whose INBOX is the inbox, indexed by Dovecot (as a mailbox in use
        is); its stored settings."""
        from imapclient import IMAPClient

        if self.dovecot is None:
            sys.path.insert(0, str(ROOT))  # tests.support: the suite's own Dovecot set-up
            from tests.support.dovecot import start_dovecot

            self.dovecot = start_dovecot(self.data_dir / "dovecot")
        dovecot = self.dovecot
        dovecot.add_user(user, self.password)
        dovecot.seed(user, inbox(size, address, now))
        with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=600) as client:
            client.login(user, self.password)
            client.select_folder("INBOX", readonly=True)
            client.sort(["REVERSE DATE"])
            client.thread("REFS")
        login = {"security": "none", "username": user, "password_env": PASSWORD_ENV}
        return {"host": dovecot.host, "port": dovecot.port, **login}

    def stop(self) -> None:
        if self.dovecot is not None:
            self.dovecot.stop()


# --- Report -----------------------------------------------------------------------------


def code_version() -> str:
    """The commit measured, and whether the product code differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "tasks", "bridge", "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"{head}{' + uncommitted changes in tasks/bridge/config' if changed else ''}"


@dataclass(frozen=True)
class Ceiling:
    """Celery's own rate on this machine: the bulk runs' worker configuration draining a
    raw Celery no-op task (bench/receivers.py's drain), the most any path that runs one
    task per message can reach here."""

    rate: float  # tasks/s, the better of two drains
    cpu_ms: float  # the worker's CPU a task, in that drain


def measure_ceiling(concurrency: int, prefix: str, data_dir: Path) -> Ceiling:
    sys.path.insert(0, str(ROOT / "bench" / "peers"))  # noop_jobs, for the Drainer
    from receivers import RAW_NOOP, CeleryWorker, Drainer

    idle = f"bench-idle-{uuid.uuid4().hex[:6]}"
    worker = CeleryWorker(data_dir / "ceiling-worker.log", idle, concurrency)
    drainer: Drainer | None = None
    try:
        worker.wait_ready()
        drainer = Drainer(prefix, worker)
        drains = [drainer.drain(RAW_NOOP, CEILING_JOBS) for _ in range(2)]
    finally:
        worker.stop()
        if drainer is not None:
            drainer.close()
    rate, cpu_ms = max(drains)
    say(f"Celery ceiling: a raw no-op task drains at {rate:,.0f}/s ({cpu_ms:.2f} ms CPU a task)")
    return Ceiling(rate, cpu_ms)


def report(
    runs: list[BulkRun],
    references: dict[int, Reference],
    concurrency: int,
    version: str,
    ceiling: Ceiling | None,
) -> tuple[list[Row], list[str]]:
    from tasks.jobs.bulk_process import PAGE_SIZE

    rows: list[Row] = []
    for run in runs:
        reference = references.get(run.size) if run.adapter == "maildir" else None
        if reference is None:
            continue
        ratio = run.rate / reference.rate if reference.rate else 0.0
        rows.append(
            Row(
                f"maildir {run.size:,}: bulk_process vs reference loop",
                f"{run.rate:,.0f} msg/s ({run.seconds:,.1f} s start() -> "
                f"{'COMPLETED' if run.completed else 'NOT COMPLETED'})",
                f"{reference.rate:,.0f} msg/s ({reference.seconds:,.1f} s)",
                ratio,
                f">= {GOAL_RATIO:.2f}x",
                run.good and reference.correct and ratio >= GOAL_RATIO,
            )
        )
    for adapter in ADAPTERS:
        mine = sorted((run for run in runs if run.adapter == adapter), key=lambda r: r.size)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        ratio = large.cpu_ms_per_message / small.cpu_ms_per_message
        middle = "".join(f", {r.size:,}: {r.cpu_ms_per_message:.2f} ms" for r in mine[1:-1])
        rows.append(
            Row(
                f"{adapter}: worker CPU per message, {large.size:,} vs {small.size:,}",
                f"{large.cpu_ms_per_message:.2f} ms{middle and ' (' + middle[2:] + ')'}",
                f"{small.cpu_ms_per_message:.2f} ms",
                ratio,
                f"<= {GOAL_FLAT:.2f}x",
                small.good and large.good and ratio <= GOAL_FLAT,
            )
        )
    for run in runs:
        busy = run.busy
        rows.append(
            Row(
                f"{run.adapter} {run.size:,}: pool busy (not waiting for work)",
                f"{busy.not_waiting:.0%}: running tasks {busy.running:.0%}, handing them over "
                f"{busy.not_waiting - busy.running:.0%}",
                f"waiting, nothing queued: {busy.starved:.0%}",
                busy.not_waiting,
                f">= {GOAL_BUSY:.0%}",
                run.good and busy.not_waiting >= GOAL_BUSY,
            )
        )
    notes = [
        f"Worker: `celery -A tasks worker --pool prefork --concurrency {concurrency}` "
        f"(--loglevel INFO, without gossip/mingle/heartbeat), fresh for each run and ready "
        f"before start(); Redis {REDIS_URL}; {os.cpu_count()} CPUs; code at {version}.",
        "Mail: one thread a message, all in the window; 30% newsletters (archived), 20% "
        "receipts (labelled), 20% notifications (marked read), 30% no match. IMAP: a private "
        "Dovecot on 127.0.0.1, plain text.",
    ]
    for run in runs:
        job = run.job
        pages = -(-run.size // PAGE_SIZE)
        counts = (
            f"pages {job.pages_fetched}/{pages}, processed {job.processed:,} + failed "
            f"{job.failed:,} == queued {job.emails_queued:,} == total {job.total_emails:,}: "
            f"{'add up' if run.totals_add_up() else 'DO NOT add up'}"
            if job is not None
            else "no job row"
        )
        other = f"; other: {dict(run.times.other)}" if run.times.other else ""
        notes.append(
            f"{run.adapter} {run.size:,}: {counts}; results {run.results}"
            f"{'' if run.correct else '  WRONG'}; {run.times.describe('fetcher')}; "
            f"{run.times.describe('worker#batch')}; {run.times.describe('worker')}{other}; "
            f"worker CPU {run.cpu_seconds:,.1f} s "
            f"(main process {run.main_cpu_seconds:,.1f} s)."
        )
    if ceiling is not None:
        wanted = [GOAL_RATIO * reference.rate for reference in references.values()]
        asks = (
            f" The goal (>= {GOAL_RATIO:.2f}x the reference loop) asks for "
            + " / ".join(f"{rate:,.0f}" for rate in wanted)
            + f" msg/s: {max(wanted) / ceiling.rate:.2f}x of that ceiling at most."
            if wanted
            else ""
        )
        notes.append(
            f"Celery's ceiling on this machine: the same worker configuration drains a raw "
            f"Celery no-op task at {ceiling.rate:,.0f} tasks/s ({ceiling.cpu_ms:.2f} ms of "
            f"worker CPU a task), the most a path that ran one task per message could reach "
            f"(a bulk run's Celery worker runs a page's messages as one batch task).{asks}"
        )
    for size, reference in sorted(references.items()):
        notes.append(
            f"reference {size:,}: {reference.seconds / size * 1000:.2f} ms a message, "
            f"{reference.cpu_seconds:,.1f} s CPU of {reference.seconds:,.1f} s wall; results "
            f"{reference.results}{'' if reference.correct else '  WRONG'}."
        )
    return rows, notes


# --- Main -------------------------------------------------------------------------------


def clean_up(prefix: str, database_url: str | None, data_dir: Path, boxes: Mailboxes) -> None:
    """Undo everything the run made; one failed step does not stop the others."""

    def drop() -> None:
        if database_url is None:
            return
        if "bridge.store.db" in sys.modules:  # close our pooled connections first
            from bridge.store.db import engine_for

            engine_for(database_url).dispose()
        drop_database(database_url)

    def redis_keys() -> None:
        say(f"deleted {delete_prefix(prefix)} Redis keys under {prefix}")

    steps: list[tuple[str, Callable[[], object]]] = [
        ("Dovecot", boxes.stop),
        (f"Redis keys under {prefix}", redis_keys),
        ("the database", drop),
        (str(data_dir), lambda: shutil.rmtree(data_dir, ignore_errors=True)),
    ]
    run_cleanup(steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", help="inbox sizes for every adapter (default: see the module's docstring)"
    )
    parser.add_argument("--adapter", choices=[*ADAPTERS, "both"], default="both")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a run may take")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row misses")
    args = parser.parse_args()
    adapters = ADAPTERS if args.adapter == "both" else (args.adapter,)
    sizes_of = {
        adapter: sorted(
            {max(100, min(int(size), MAX_MESSAGES)) for size in args.sizes.split(",")}
            if args.sizes
            else DEFAULT_SIZES[adapter]
        )
        for adapter in adapters
    }
    concurrency = max(1, min(args.concurrency, 16))
    timeout = max(10.0, min(args.timeout, 7200.0))

    signal.signal(signal.SIGTERM, raise_on_sigterm)
    data_dir = Path(tempfile.mkdtemp(prefix="jobbridge-bench-bulk-"))
    prefix = f"jbbench-{uuid.uuid4().hex[:8]}:"
    database_url: str | None = None
    boxes = Mailboxes(data_dir)
    runs: list[BulkRun] = []
    references: dict[int, Reference] = {}
    log_path: Path | None = None
    try:
        version = code_version()  # before the run: what the worker imports
        database_url = create_database()
        configure(Run(prefix, database_url, data_dir))
        from tasks.schema import upgrade

        upgrade(database_url)
        say(f"Redis prefix {prefix}, database {database_url.rsplit('/', 1)[1]}, dir {data_dir}")
        for size in sorted({size for sizes in sizes_of.values() for size in sizes}):
            for adapter in (adapter for adapter in adapters if size in sizes_of[adapter]):
                box = boxes.make(adapter, size)
                if adapter == "maildir":
                    references[size] = run_reference(box, database_url)
                log_path = data_dir / f"worker-{adapter}-{size}.log"
                runs.append(run_bulk(box, concurrency, timeout, log_path))
        ceiling = measure_ceiling(concurrency, prefix, data_dir) if references else None
        rows, notes = report(runs, references, concurrency, version, ceiling)
    except BaseException:
        if log_path is not None and log_path.exists():
            say(f"last lines of {log_path.name}:\n{log_path.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        clean_up(prefix, database_url, data_dir, boxes)

    print_table(rows, notes, title="jobbridge bulk-process benchmark", caption_justify="left")
    return 1 if args.strict and not all(row.passed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
