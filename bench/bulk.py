"""Bulk-process benchmark: a whole `bulk_process` job on Celery against a plain loop.

    .venv/bin/python bench/bulk.py [--messages 5000] [--concurrency 2] [--rounds 1]
                                   [--timeout 600] [--strict]

Row (against a baseline measured in this same run):

  bulk_process on Celery (Redis): `bulk_process.start` over a Maildir of --messages
  messages, one thread each, all dated within the job's window, processed by ONE
  `celery -A tasks worker --pool prefork --concurrency N` until the job row says
  COMPLETED; messages per second from start() to the row's completed_at.
  Baseline: the same three rules over a fresh Maildir of the same messages, in a plain
  in-process loop (`get_message` + `apply_rules` per message) on the same database.
  Goal: bulk >= 50% of the loop's rate.

The mix: 30% newsletters (rule 1 archives them), 20% receipts (rule 2 labels them),
20% notifications (rule 3 marks them read), 30% personal mail no rule matches. Both
sides are checked to have had exactly those effects, and the job row's totals to add
up (processed + failed == emails_queued == total_emails == messages).

Creating the Maildirs (mailbox.add, ~2 ms a message) and starting the worker are set-up,
outside the timing. With --rounds > 1 each round uses fresh accounts and Maildirs and
the side that goes first alternates; the rates reported are medians.

Everything it uses is its own and removed at the end, on failure too: a Redis key
prefix, a PostgreSQL database, a temporary directory (Maildirs, worker logs) and the
worker process; all on loopback. Progress goes to stderr; the one table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

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
DEFAULT_MESSAGES = 5_000
MAX_MESSAGES = 50_000
GOAL_RATIO = 0.50
WORKER_START_SECONDS = 60.0
POLL_SECONDS = 0.05
STOP_SECONDS = 15.0

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


def expected_effects(messages: int) -> Counter[str]:
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
            "INFO",  # as `jobbridge dev` runs it; also gives each task's runtime
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
    r"Task (?P<name>\S+?)\[[^\]]+\] (?:succeeded in (?P<seconds>[0-9.eE+-]+)s|(?P<other>\w+))"
)


@dataclass
class TaskTimes:
    """What the worker's INFO log says about each task it ran."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    other: Counter[str] = field(default_factory=Counter)  # retry, raised, ... by name:state

    @classmethod
    def parse(cls, log: str) -> TaskTimes:
        times = cls()
        for match in _TASK_LINE.finditer(log):
            name = match["name"].rsplit(".", 1)[-1]
            if match["seconds"] is not None:
                times.seconds.setdefault(name, []).append(float(match["seconds"]))
            elif match["other"] != "received":
                times.other[f"{name}:{match['other']}"] += 1
        return times

    def describe(self, name: str) -> str:
        values = self.seconds.get(name, [])
        if not values:
            return f"{name}: no runs logged"
        return (
            f"{name}: {len(values):,} runs, mean {statistics.mean(values) * 1000:,.1f} ms, "
            f"max {max(values) * 1000:,.0f} ms, sum {sum(values):,.1f} s"
        )


# --- Mail and rules ---------------------------------------------------------------------


def make_message(number: int, to: str, date: datetime) -> EmailMessage:
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
    return message


@dataclass(frozen=True)
class Mailbox:
    account_id: str
    email: str
    path: Path


def make_mailbox(label: str, data_dir: Path, messages: int, now: datetime) -> Mailbox:
    """An account whose inbox is a fresh Maildir of `messages` messages, and the 3 rules."""
    from bridge.store.db import session_scope
    from tasks.mail.maildir import MaildirProvider
    from tasks.models import (
        EmailAccount,
        MailProviderKind,
        Rule,
        RuleAction,
        RuleActionType,
    )

    email = f"{label}-{uuid.uuid4().hex[:6]}@bench.example.test"
    path = (data_dir / "maildir" / label).resolve()
    mail = MaildirProvider(path, email)
    started = time.perf_counter()
    for number in range(messages):
        # Newest first, a few seconds apart: all inside the window (the last day).
        mail.deliver(make_message(number, email, now - timedelta(seconds=5 * (number + 1))))
    say(f"{label}: {messages:,} messages in {time.perf_counter() - started:.1f}s (set-up)")
    with session_scope() as session:
        account = EmailAccount(
            email=email, provider=MailProviderKind.MAILDIR, provider_settings={"path": str(path)}
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
        account_id = account.id
    return Mailbox(account_id, email, path)


def effects(mailbox: Mailbox) -> tuple[Counter[str], int]:
    """Rule results recorded for the account, by rule name, and the Archive folder's size."""
    from sqlalchemy import func, select

    from bridge.store.db import session_scope
    from tasks.mail.maildir import MaildirProvider
    from tasks.models import ExecutedRule, Rule

    with session_scope() as session:
        rows = session.execute(
            select(Rule.name, func.count())
            .select_from(ExecutedRule)
            .outerjoin(Rule, Rule.id == ExecutedRule.rule_id)
            .where(ExecutedRule.email_account_id == mailbox.account_id)
            .group_by(Rule.name)
        ).all()
    counts: Counter[str] = Counter({name or NO_MATCH: int(count) for name, count in rows})
    archived = len(MaildirProvider(mailbox.path, mailbox.email).folder_keys("Archive"))
    return counts, archived


def effects_ok(mailbox: Mailbox, messages: int) -> tuple[bool, str]:
    counts, archived = effects(mailbox)
    want = expected_effects(messages)
    ok = counts == want and archived == want[RULE_FOR_KIND["newsletter"]]
    shown = ", ".join(f"{name} {counts.get(name, 0):,}" for name in sorted(want))
    return ok, f"{shown}; Archive folder {archived:,}" + ("" if ok else f" (expected {dict(want)})")


# --- The two sides ----------------------------------------------------------------------


@dataclass
class LoopResult:
    done: int
    seconds: float
    cpu_seconds: float  # this process's CPU: the rest of the wall time waited on PostgreSQL
    effects: str
    correct: bool

    @property
    def rate(self) -> float:
        return self.done / self.seconds


def run_loop(mailbox: Mailbox, messages: int, timeout: float) -> LoopResult:
    """The baseline: every inbox message through apply_rules, one after the other."""
    from tasks.accounts import account_or_fail
    from tasks.mail.maildir import INBOX, MaildirProvider
    from tasks.rules import apply_rules

    # What the worker's mailbox_of() builds for this account, minus its per-message lookup.
    account = account_or_fail(mailbox.account_id)
    mail = MaildirProvider(mailbox.path, mailbox.email)
    say(f"loop: apply_rules over {messages:,} messages, in-process")
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + timeout
    done = 0
    for key in sorted(mail.folder_keys(INBOX)):
        if time.perf_counter() > deadline:
            say(f"loop: stopped at the {timeout:.0f}s limit after {done:,} messages")
            break
        apply_rules(account, mail.get_message(key), mail)
        done += 1
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    correct, described = effects_ok(mailbox, messages)
    say(f"loop: {done:,} in {seconds:.1f}s = {done / seconds:,.0f} msg/s")
    return LoopResult(done, seconds, cpu_seconds, described, correct and done == messages)


@dataclass
class BulkResult:
    job: BulkProcessJob | None
    seconds: float
    completed: bool
    worker_cpu_seconds: float
    times: TaskTimes
    effects: str
    correct: bool

    @property
    def rate(self) -> float:
        processed = self.job.processed if self.job is not None else 0
        return processed / self.seconds

    def totals_add_up(self, messages: int) -> bool:
        job = self.job
        return (
            job is not None
            and job.processed + job.failed == job.emails_queued == job.total_emails == messages
        )


def run_bulk(
    mailbox: Mailbox, messages: int, concurrency: int, timeout: float, log_path: Path
) -> BulkResult:
    """start() -> COMPLETED on one prefork worker; the worker is stopped before returning."""
    from tasks.jobs import bulk_process
    from tasks.models import BulkJobStatus, utcnow

    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker = Worker(concurrency, log_path)
    job: BulkProcessJob | None = None
    try:
        worker.wait_ready()
        say(f"bulk: worker ready (prefork, concurrency {concurrency}); starting the job")
        started_at = utcnow()
        started = time.perf_counter()
        deadline = started + timeout
        job = bulk_process.start(mailbox.account_id, started_at - timedelta(days=1), None, False)
        job_id = job.id
        last_said = started
        while True:
            job = bulk_process.get(job_id)
            if job is None or job.status not in (BulkJobStatus.PENDING, BulkJobStatus.RUNNING):
                break
            now = time.perf_counter()
            if now > deadline:
                say(f"bulk: not COMPLETED within {timeout:.0f}s")
                break
            if not worker.alive():
                say("bulk: the worker exited")
                break
            if now - last_said >= 10:
                last_said = now
                say(
                    f"bulk: {now - started:.0f}s, pages {job.pages_fetched}, queued "
                    f"{job.emails_queued:,}, processed {job.processed:,}"
                )
            time.sleep(POLL_SECONDS)
        polled = time.perf_counter() - started
    finally:
        worker.stop()
    completed = job is not None and job.status is BulkJobStatus.COMPLETED
    # The row's own completion moment (stamped by the worker, same host clock), so the
    # poll interval does not count; the poll's figure if the job did not complete.
    seconds = polled
    if completed and job is not None and job.completed_at is not None:
        seconds = (job.completed_at - started_at).total_seconds()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    correct, described = effects_ok(mailbox, messages)
    status = job.status.value if job is not None else "missing"
    say(f"bulk: {status} after {seconds:.1f}s")
    return BulkResult(
        job, seconds, completed, worker_cpu, TaskTimes.parse(worker.log()), described, correct
    )


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


def report(
    messages: int,
    concurrency: int,
    bulks: list[BulkResult],
    loops: list[LoopResult],
    setup_seconds: float,
    version: str,
) -> tuple[Row, list[str]]:
    from tasks.jobs.bulk_process import PAGE_SIZE

    bulk_rate = statistics.median(b.rate for b in bulks)
    loop_rate = statistics.median(loop.rate for loop in loops)
    ratio = bulk_rate / loop_rate if loop_rate else 0.0
    all_good = all(b.completed and b.totals_add_up(messages) and b.correct for b in bulks) and all(
        loop.correct for loop in loops
    )
    rounds = len(bulks)
    last = bulks[-1]
    median_of = f"median of {rounds}; last " if rounds > 1 else ""
    reached = "start() -> COMPLETED" if last.completed else "NOT COMPLETED, processed so far"
    row = Row(
        f"bulk_process({messages:,}), Celery/Redis, 1 worker prefork N={concurrency}",
        f"{bulk_rate:,.0f} msg/s ({median_of}{last.seconds:,.1f} s {reached})",
        f"{loop_rate:,.0f} msg/s plain get_message + apply_rules loop ({loops[-1].seconds:,.1f} s)",
        ratio,
        f">= {GOAL_RATIO:.2f}x loop",
        all_good and ratio >= GOAL_RATIO,
    )
    pages_expected = -(-messages // PAGE_SIZE)
    notes = [
        f"Worker: `celery -A tasks worker --pool prefork --concurrency {concurrency}` "
        f"(--loglevel INFO, without gossip/mingle/heartbeat), started and ready before "
        f"start(); Redis {REDIS_URL}; {os.cpu_count()} CPUs; code at {version}.",
        f"Mail: {messages:,} messages in 1 thread each, all in the window; 30% newsletters "
        "(archived), 20% receipts (labelled), 20% notifications (marked read), 30% no match. "
        f"Set-up (Maildirs, accounts, rules) {setup_seconds:,.0f} s, not measured.",
    ]
    for number, bulk in enumerate(bulks, 1):
        job = bulk.job
        tag = f"round {number}: " if rounds > 1 else ""
        if job is None:
            notes.append(f"{tag}bulk: no job row")
            continue
        adds_up = "add up" if bulk.totals_add_up(messages) else "DO NOT add up"
        notes.append(
            f"{tag}bulk job {job.status.value}: pages {job.pages_fetched} (expected "
            f"{pages_expected}, {PAGE_SIZE} a page); processed {job.processed:,} + failed "
            f"{job.failed:,} == emails_queued {job.emails_queued:,} == total "
            f"{job.total_emails:,} == {messages:,}: {adds_up}."
        )
        notes.append(f"{tag}bulk effects: {bulk.effects}" + ("" if bulk.correct else "  WRONG"))
    loop = loops[-1]
    notes.append(f"loop effects: {loop.effects}" + ("" if loop.correct else "  WRONG"))
    times = last.times
    fetcher = times.seconds.get("fetcher", [])
    worker_sum = sum(times.seconds.get("worker", []))
    busy = (sum(fetcher) + worker_sum) / (concurrency * last.seconds) if last.seconds else 0.0
    notes += [
        "Worker log (task runtimes, last round): "
        + "; ".join(times.describe(name) for name in ("fetcher", "worker"))
        + (f"; other: {dict(times.other)}" if times.other else "")
        + ".",
        f"Pages are fetched one after another (fetcher concurrency 1, each page queued "
        f"behind the previous page's {PAGE_SIZE} messages): fetcher time {sum(fetcher):,.1f} s "
        f"of {last.seconds:,.1f} s wall; message work {worker_sum:,.1f} s over {concurrency} "
        f"processes; pool busy {busy:.0%}. Worker CPU (pool + main, user+sys) "
        f"{last.worker_cpu_seconds:,.1f} s.",
        f"Loop: {loop.seconds / max(loop.done, 1) * 1000:,.2f} ms a message, "
        f"{loop.cpu_seconds:,.1f} s CPU of {loop.seconds:,.1f} s wall (the rest: PostgreSQL "
        "round trips).",
    ]
    if rounds > 1:
        notes.append(
            f"Rounds alternate which side goes first; bulk rates "
            f"{', '.join(f'{b.rate:,.0f}' for b in bulks)}, loop rates "
            f"{', '.join(f'{loop.rate:,.0f}' for loop in loops)} msg/s."
        )
    return row, notes


# --- Main -------------------------------------------------------------------------------


def clean_up(prefix: str, database_url: str | None, data_dir: Path) -> None:
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

    run_cleanup(
        [
            (f"Redis keys under {prefix}", redis_keys),
            ("the database", drop),
            (str(data_dir), lambda: shutil.rmtree(data_dir, ignore_errors=True)),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="messages a side")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, sides alternating")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds each side may take at most"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when the row misses")
    args = parser.parse_args()
    messages = max(1, min(args.messages, MAX_MESSAGES))
    concurrency = max(1, min(args.concurrency, 16))
    rounds = max(1, min(args.rounds, 5))
    timeout = max(10.0, min(args.timeout, 3600.0))

    signal.signal(signal.SIGTERM, raise_on_sigterm)
    data_dir = Path(tempfile.mkdtemp(prefix="jobbridge-bench-bulk-"))
    prefix = f"jbbench-{uuid.uuid4().hex[:8]}:"
    database_url: str | None = None
    logs: list[Path] = []
    bulks: list[BulkResult] = []
    loops: list[LoopResult] = []
    setup_seconds = 0.0
    try:
        version = code_version()  # before the run: what the worker imports
        database_url = create_database()
        configure(Run(prefix, database_url, data_dir))
        from tasks.models import utcnow
        from tasks.schema import upgrade

        upgrade(database_url)
        say(f"Redis prefix {prefix}, database {database_url.rsplit('/', 1)[1]}, dir {data_dir}")
        for number in range(rounds):
            started = time.perf_counter()
            now = utcnow()
            bulk_box = make_mailbox(f"bulk{number}", data_dir, messages, now)
            loop_box = make_mailbox(f"loop{number}", data_dir, messages, now)
            setup_seconds += time.perf_counter() - started
            log_path = data_dir / f"worker-{number}.log"
            logs.append(log_path)

            def bulk_side(box: Mailbox = bulk_box, log: Path = log_path) -> None:
                bulks.append(run_bulk(box, messages, concurrency, timeout, log))

            def loop_side(box: Mailbox = loop_box) -> None:
                loops.append(run_loop(box, messages, timeout))

            sides = [bulk_side, loop_side] if number % 2 == 0 else [loop_side, bulk_side]
            for side in sides:
                side()
        row, notes = report(messages, concurrency, bulks, loops, setup_seconds, version)
    except BaseException:
        for log in logs[-1:]:
            if log.exists():
                say(f"last lines of {log.name}:\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        clean_up(prefix, database_url, data_dir)

    print_table([row], notes, title="jobbridge bulk-process benchmark", caption_justify="left")
    return 1 if args.strict and not row.passed else 0


if __name__ == "__main__":
    sys.exit(main())
