"""A multi-host drill: three Celery worker hosts and two web replicas, each in a network
namespace of its own (tests/support/netns.py), sharing one Redis and one PostgreSQL.

The machine's Redis and PostgreSQL listen on 127.0.0.1, which no namespace can reach,
so the drill brings its own: a `redis-server` bound to the bridge's address in the root
namespace, and a forwarder from that address to PostgreSQL, holding a database made for
this module. Every host process is started with `ip netns exec` and knows the shared
services only by those addresses, as a real host would.

The workers run the inbox app as tests/support/fault_worker.py serves it: the real
`tasks` app with Redis's visibility timeout shortened to VISIBILITY_SECONDS (the
deployment's is `CELERY_ETA_HORIZON_SECONDS + CELERY_HARD_TIME_LIMIT_SECONDS + 600`,
never under ten minutes whatever the variables say) and every archive and send held at
a gate the test opens and closes per host. The gates stay open except where a test
closes one to catch a host mid-action.

The bulk-run tests print what they measured (`[drill] ...` lines, shown with `-s`):
messages per second, per pool process, and the CPU milliseconds one message costs the
workers, PostgreSQL and Redis.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bridge.celery.batches import BATCH_MAX
from bridge.celery.producer import new_celery
from bridge.devstack import stack_commands
from bridge.store.db import engine_for, session_scope
from config import load_settings
from tasks.demo import add_account
from tasks.jobs import bulk_process, bulk_worker
from tasks.mail.maildir import MaildirProvider
from tasks.models import (
    BulkItemStatus,
    BulkJobStatus,
    BulkProcessItem,
    BulkProcessJob,
    ExecutedAction,
    ExecutedRule,
    ExecutedRuleStatus,
    RuleActionType,
)
from tasks.schema import upgrade
from tests.support import env as test_env
from tests.support import netns
from tests.support.rules import add_rule
from tests.support.services import (
    ADMIN_URL,
    Process,
    create_database,
    drop_database,
    wait_until_ready,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.timeout(300)
CUT_RUN_MESSAGES = 1000

VISIBILITY_SECONDS = 20  # an unacknowledged message goes back to the queue after this
WORKER_PROCESSES = 2  # pool processes per worker host
WEB_PORT = 8000  # every host has its own network stack: the same port on each replica
REDIS_PORT = 6379  # on the bridge's address, not the machine's loopback Redis
BULK_WORKER_LIMIT = bulk_worker.process_message.concurrency  # per account
# `inbox-zero/test.limited` (tests/support/limited_worker.py): concurrency=3 per account.
LIMITED_JOB_LIMIT = 3


@dataclass(frozen=True)
class WorkerHost:
    host: netns.Host
    process: Process
    gate: Path  # FAULT_GATE_DIR: archives and sends wait while `open` is missing

    def close_gate(self) -> None:
        """Close the gate, forgetting the marks of the actions that passed it before."""
        (self.gate / "open").unlink()
        for mark in self.held():
            mark.unlink()

    def open_gate(self) -> None:
        (self.gate / "open").touch()

    def held(self) -> list[Path]:
        """The marks of the archives and sends that reached this host's gate so far."""
        return sorted(self.gate.glob("entered.*"))


@dataclass(frozen=True)
class Drill:
    network: netns.Network
    workers: list[WorkerHost]
    webs: list[str]  # each replica's base URL, on its host's address
    env: dict[str, str]  # what every host process is started with
    database_url: str  # the drill's database as this process reaches it
    redis_url: str
    prefix: str
    log_dir: Path
    redis: Process


def _celery_worker(app_module: str, name: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app_module,
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]


def _web(host: netns.Host) -> list[str]:
    """The web command `jobbridge dev` runs, listening on the host's own address."""
    command = stack_commands(WEB_PORT, flower_port=0, with_flower=False)["web"]
    command[command.index("--host") + 1] = host.address
    return command


def _start_redis(network: netns.Network, password: str, log_dir: Path) -> Process:
    server = Process(
        "drill-redis",
        [
            "redis-server",
            "--bind",
            network.gateway,
            "--port",
            str(REDIS_PORT),
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        os.environ,
        log_dir,
    )
    client = redis.Redis(host=network.gateway, port=REDIS_PORT, password=password)

    def answers() -> bool:
        if not server.alive():
            raise AssertionError(f"redis-server exited:\n{server.log()}")
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=20, what="the drill's Redis to answer")
    finally:
        client.close()
    return server


def _healthy(process: Process, url: str) -> bool:
    if not process.alive():
        raise AssertionError(f"{process.name} exited:\n{process.log()}")
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def drill(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:
        network = stack.enter_context(netns.Network())  # removed last, after its processes
        hosts = [network.add_host() for _ in range(5)]
        password = secrets.token_urlsafe(16)
        redis_server = _start_redis(network, password, log_dir)
        stack.callback(redis_server.stop)
        database_url = create_database()
        stack.callback(drop_database, database_url)
        stack.callback(lambda: engine_for(database_url).dispose())
        upgrade(database_url)
        postgres = stack.enter_context(netns.Forwarder(network.gateway, "127.0.0.1", 5432))

        redis_url = f"redis://:{password}@{network.gateway}:{REDIS_PORT}/0"
        prefix = f"jbdrill-{network.token}:"
        host_database = make_url(database_url).set(host=network.gateway, port=postgres.port)
        env = {
            **os.environ,
            "DATABASE_URL": host_database.render_as_string(hide_password=False),
            "REDIS_URL": redis_url,
            "BROKER_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "DATA_DIR": str(tmp_path_factory.mktemp("drill-data")),
            "JOB_PROVIDER": "celery",
            "INTERNAL_API_KEY": test_env.INTERNAL_API_KEY,
            # A drill's: no ETA (a limit's "come back later") beyond 10 s. The visibility
            # timeout these give (10 + 60 + 600 s) is too long for one: see the docstring.
            "CELERY_ETA_HORIZON_SECONDS": "10",
            "CELERY_HARD_TIME_LIMIT_SECONDS": "60",
        }
        gates = tmp_path_factory.mktemp("drill-gates")
        workers: list[WorkerHost] = []
        webs: list[tuple[Process, str]] = []
        for number, host in enumerate(hosts[:3], start=1):
            gate = gates / f"host{number}"
            gate.mkdir()
            (gate / "open").touch()
            worker_env = {
                **env,
                "FAULT_GATE_DIR": str(gate),
                "FAULT_LEASE_SECONDS": "30",  # scheduled actions' lease: no part here
                "FAULT_VISIBILITY_SECONDS": str(VISIBILITY_SECONDS),
            }
            command = _celery_worker(
                "tests.support.fault_worker", f"drill{number}-{network.token}", WORKER_PROCESSES
            )
            process = Process(f"drill-worker-{number}", host.command(command), worker_env, log_dir)
            stack.callback(process.stop)
            workers.append(WorkerHost(host, process, gate))
        for number, host in enumerate(hosts[3:], start=1):
            process = Process(f"drill-web-{number}", host.command(_web(host)), env, log_dir)
            stack.callback(process.stop)
            webs.append((process, f"http://{host.address}:{WEB_PORT}"))
        for worker in workers:
            wait_until_ready(worker.process)
        for process, url in webs:
            wait_for(partial(_healthy, process, url), timeout=60, what=f"{process.name} health")
        yield Drill(
            network=network,
            workers=workers,
            webs=[url for _, url in webs],
            env=env,
            database_url=database_url,
            redis_url=redis_url,
            prefix=prefix,
            log_dir=log_dir,
            redis=redis_server,
        )


@pytest.fixture
def on_drill(drill: Drill, configure: Any) -> Drill:
    """This process reads and writes the drill's database and Redis, as the hosts do;
    every worker host is consuming (one whose link was cut waits on its old connection
    until kombu's BRPOP health check drops it: up to about 11 s)."""
    configure(
        DATABASE_URL=drill.database_url,
        REDIS_URL=drill.redis_url,
        BROKER_URL=drill.redis_url,
        REDIS_KEY_PREFIX=drill.prefix,
    )
    for worker in drill.workers:
        wait_for(
            partial(consuming, drill, worker),
            timeout=90,
            interval=0.5,
            what=f"the worker on {worker.host.address} to wait on the queue again",
        )
    return drill


def consuming(drill: Drill, worker: WorkerHost) -> bool:
    """Whether Redis has had a BRPOP from the worker's host in the last two seconds (its
    consumer sends one a second while it waits on the queue)."""
    clients = redis.Redis.from_url(drill.redis_url).client_list()
    return any(
        client["addr"].rpartition(":")[0] == worker.host.address
        and client["cmd"] == "brpop"
        and int(client["idle"]) <= 2
        for client in clients
    )


# An inbox and what processing it exactly once leaves -----------------------------------


@dataclass(frozen=True)
class Inbox:
    account_id: str
    email: str
    path: Path
    keys: frozenset[str]
    newsletters: frozenset[str]  # archived by the "newsletters" rule
    urgent: frozenset[str]  # answered by the "urgent" rule

    def provider(self) -> MaildirProvider:
        return MaildirProvider(self.path, self.email)


def seed_inbox(tmp_path: Path, count: int) -> Inbox:
    """`count` recent messages, one thread each: odd ones are newsletters (archived), every
    twentieth an urgent one (answered: a send, which a second run would repeat visibly),
    the rest personal (no rule matches)."""
    email = f"drill-{uuid.uuid4().hex[:8]}@example.test"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "maildir"
    account = add_account(email, path)
    mail = MaildirProvider(path, email)
    now = datetime.now(UTC)
    newsletters, urgent, keys = set(), set(), set()
    for number in range(count):
        kind = "Newsletter" if number % 2 else "Urgent" if number % 20 == 0 else "Hello"
        message = EmailMessage()
        message["From"] = f"{kind.lower()}{number}@example.test"
        message["To"] = email
        message["Subject"] = f"{kind} #{number}"
        message["Date"] = format_datetime(now - timedelta(seconds=30 * (number + 1)))
        message["Message-ID"] = make_msgid("drill")
        message.set_content(f"{kind} body {number}")
        key = mail.deliver(message)
        keys.add(key)
        if kind == "Newsletter":
            newsletters.add(key)
        elif kind == "Urgent":
            urgent.add(key)
    add_rule(
        account.id,
        "newsletters",
        [{"type": RuleActionType.ARCHIVE}],
        subject_pattern="newsletter",
    )
    add_rule(
        account.id,
        "urgent",
        [{"type": RuleActionType.REPLY, "content": "On it."}],
        subject_pattern="urgent",
    )
    return Inbox(
        account.id, email, path, frozenset(keys), frozenset(newsletters), frozenset(urgent)
    )


def start_run(web: str, inbox: Inbox) -> str:
    """Start a bulk run of the whole inbox through a web replica's API; its job id."""
    response = httpx.post(
        f"{web}/api/bulk-process/start",
        json={
            "emailAccountId": inbox.account_id,
            "startDate": (datetime.now(UTC) - timedelta(days=3)).isoformat(),
            "onlyUnread": False,
        },
        headers={"x-api-key": test_env.INTERNAL_API_KEY},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["jobId"])


def completed(job_id: str) -> BulkProcessJob | None:
    job = bulk_process.get(job_id)
    return job if job is not None and job.status is BulkJobStatus.COMPLETED else None


def done_or_drained(drill: Drill, others: list[WorkerHost], job_id: str) -> BulkProcessJob | None:
    """The run once it completed, or once nothing more can happen to it without the cut
    host: the broker holds none of its messages and the other hosts have finished every
    one they received."""
    job = bulk_process.get(job_id)
    if job is None or job.status is BulkJobStatus.COMPLETED:
        return job
    idle = all(unfinished(worker.process.log(), job_id) == 0 for worker in others)
    if not idle or broker_holds(drill, job_id) != 0:
        return None
    # Read again: a message the others finished after the first read is counted now.
    return bulk_process.get(job_id)


def wait_completed(job_id: str, timeout: float, what: str) -> BulkProcessJob:
    job = wait_for(partial(completed, job_id), timeout=timeout, interval=0.5, what=what)
    assert job is not None
    return job


@dataclass(frozen=True)
class Effects:
    """What a run left in the database and the mailbox, counted where a double application
    would show: item rows, rule results, actions, folders, sent replies."""

    processed: int
    failed: int
    items: dict[str, int]  # item status -> rows
    item_messages: int  # distinct messages among them
    results: dict[str, int]  # rule result status -> rows
    actions: dict[str, int]  # executed action type -> rows
    inbox: frozenset[str]
    archive: frozenset[str]
    sent_subjects: list[str]


def effects(inbox: Inbox, job_id: str) -> Effects:
    with session_scope() as session:
        job = session.get(BulkProcessJob, job_id)
        assert job is not None
        items = session.execute(
            select(BulkProcessItem.status, func.count())
            .where(BulkProcessItem.job_id == job_id)
            .group_by(BulkProcessItem.status)
        ).all()
        item_messages = session.scalar(
            select(func.count(func.distinct(BulkProcessItem.message_id))).where(
                BulkProcessItem.job_id == job_id
            )
        )
        results = session.execute(
            select(ExecutedRule.status, func.count())
            .where(ExecutedRule.email_account_id == inbox.account_id)
            .group_by(ExecutedRule.status)
        ).all()
        actions = session.execute(
            select(ExecutedAction.type, func.count())
            .join(ExecutedRule, ExecutedRule.id == ExecutedAction.executed_rule_id)
            .where(ExecutedRule.email_account_id == inbox.account_id)
            .group_by(ExecutedAction.type)
        ).all()
    mail = inbox.provider()
    sent = mail.folder("Sent")
    return Effects(
        processed=job.processed,
        failed=job.failed,
        items={status.value: count for status, count in items},
        item_messages=int(item_messages or 0),
        results={status.value: count for status, count in results},
        actions={kind.value: count for kind, count in actions},
        inbox=frozenset(mail.folder_keys("INBOX")),
        archive=frozenset(mail.folder_keys("Archive")),
        sent_subjects=sorted(str(message["Subject"]) for message in sent),
    )


def exactly_once(inbox: Inbox) -> Effects:
    """The effects of processing every message of `inbox` once."""
    n = len(inbox.keys)
    applied = len(inbox.newsletters) + len(inbox.urgent)
    replies = []
    for key in inbox.urgent:
        replies.append(f"Re: {inbox.provider().get_message(key).subject}")
    return Effects(
        processed=n,
        failed=0,
        items={BulkItemStatus.PROCESSED.value: n},
        item_messages=n,
        results={
            ExecutedRuleStatus.APPLIED.value: applied,
            ExecutedRuleStatus.NO_MATCH.value: n - applied,
        },
        actions={
            RuleActionType.ARCHIVE.value: len(inbox.newsletters),
            RuleActionType.REPLY.value: len(inbox.urgent),
        },
        inbox=inbox.keys - inbox.newsletters,
        archive=inbox.newsletters,
        sent_subjects=sorted(replies),
    )


# What the workers' logs say (Celery's INFO lines) about the run's worker messages: a
# message alone, `'<outcome>: <detail>'` (Celery's saferepr: single quotes, only `'`
# escaped), or a batch of them (named after its first message), `{outcome: {detail:
# how many}}`. The drill's details are short plain text: one line, under the 1,024
# characters at which Celery cuts a logged result.
_FINISHED = re.compile(
    r"bulk-process\.worker(?:#batch)?\[(?P<task>bulk-(?P<job>\w+)-msg-[^\]]+)\] "
    r"succeeded in \S+ (?:'(?P<summary>.*)'|(?P<batch>\{.*\}))$",
    re.MULTILINE,
)


def finished_runs(log: str, job_id: str) -> dict[str, list[str]]:
    """Task id -> the detail of each message it ran, each time the log says it finished,
    for the run's messages (a message or batch delivered twice finishes twice; a deferral
    for want of a slot is not a run)."""
    runs: dict[str, list[str]] = {}
    for match in _FINISHED.finditer(log):
        if match["job"] != job_id:
            continue
        details = runs.setdefault(match["task"], [])
        if match["summary"] is not None:
            details.append(match["summary"].replace("\\'", "'").partition(": ")[2])
        else:
            for counted in ast.literal_eval(match["batch"]).values():
                for detail, times in counted.items():
                    details.extend([detail] * times)
    return runs


def unfinished(log: str, job_id: str) -> int:
    """Messages of the run this worker received and has not finished (run or deferred)."""
    said = re.findall(rf"\[bulk-{job_id}-msg-[^\]]+\] (\w+)", log)
    return said.count("received") - sum(said.count(end) for end in ("succeeded", "retry", "raised"))


def runs_per_host(drill: Drill, job_id: str) -> list[int]:
    return [
        sum(map(len, finished_runs(worker.process.log(), job_id).values()))
        for worker in drill.workers
    ]


def broker_holds(drill: Drill, job_id: str) -> int:
    """Messages of the run still in the drill's Redis: queued, or delivered and unacked."""
    marker = f"bulk-{job_id}-msg-".encode()
    client = redis.Redis.from_url(drill.redis_url)
    try:
        found = 0
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"list":
                found += sum(marker in value for value in client.lrange(key, 0, -1))
            elif kind == b"hash":
                found += sum(marker in value for value in client.hvals(key))
        return found
    finally:
        client.close()


def deferrals(drill: Drill) -> int:
    return sum(worker.process.log().count("LimitReached") for worker in drill.workers)


def _cpu_seconds(pid: int, with_reaped_children: bool = False) -> float:
    """User and system CPU time of a live process (0 if it is gone), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def cpu_used(drill: Drill) -> dict[str, float]:
    """CPU seconds used so far by the worker hosts (main and pool processes), the drill's
    PostgreSQL backends and its Redis: where a message's cost goes."""
    workers = 0.0
    for worker in drill.workers:
        pid = worker.process.popen.pid
        workers += _cpu_seconds(pid, with_reaped_children=True)
        workers += sum(_cpu_seconds(child) for child in _children(pid))
    name = drill.database_url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        backends = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchall()
    return {
        "workers": workers,
        "postgres": sum(_cpu_seconds(int(pid)) for (pid,) in backends),
        "redis": _cpu_seconds(drill.redis.popen.pid),
    }


def cpu_ms_per_message(before: dict[str, float], messages: int, drill: Drill) -> dict[str, float]:
    after = cpu_used(drill)
    return {part: round(1000 * (after[part] - before[part]) / messages, 1) for part in after}


def report(name: str, **numbers: object) -> None:
    print(f"\n[drill] {name}: {json.dumps(numbers)}")


# 1. A bulk run across the hosts ---------------------------------------------------------


def test_a_bulk_run_of_2000_messages_over_three_hosts_processes_each_message_once(
    on_drill: Drill, tmp_path: Path
) -> None:
    drill = on_drill
    inbox = seed_inbox(tmp_path, 2000)
    deferred_before, cpu_before = deferrals(drill), cpu_used(drill)

    started = time.monotonic()
    job_id = start_run(drill.webs[0], inbox)
    job = wait_completed(job_id, timeout=240, what="the bulk run to complete")
    seconds = time.monotonic() - started

    assert (job.total_emails, job.emails_queued, job.pages_fetched) == (2000, 2000, 80)
    assert effects(inbox, job.id) == exactly_once(inbox)
    per_host = runs_per_host(drill, job.id)
    assert all(runs > 0 for runs in per_host), per_host  # every host took part
    report(
        "bulk run, one account",
        messages=2000,
        seconds=round(seconds, 1),
        messages_per_second=round(2000 / seconds, 1),
        worker_hosts=len(drill.workers),
        pool_processes=len(drill.workers) * WORKER_PROCESSES,
        per_account_limit=BULK_WORKER_LIMIT,
        runs_per_host=per_host,
        deferrals=deferrals(drill) - deferred_before,
        cpu_ms_per_message=cpu_ms_per_message(cpu_before, 2000, drill),
    )


# 2. One account's limit, held across hosts ------------------------------------------------


@dataclass(frozen=True)
class LimitedHosts:
    hosts: list[netns.Host]
    events: Path
    producer: Celery

    def send(self, account: str, label: str, hold_seconds: float) -> None:
        payload = {"emailAccountId": account, "label": label, "holdSeconds": hold_seconds}
        self.producer.send_task(
            "inbox-zero/test.limited", kwargs={"payload": payload}, task_id=f"{label}-task"
        )

    def runs(self, account: str) -> list[tuple[float, float, int]]:
        """(start, end, host index) of every finished run of the account."""
        found = []
        for end_path in self.events.glob(f"{account}-*.end"):
            start_path = end_path.with_suffix(".start")
            start, end = json.loads(start_path.read_text()), json.loads(end_path.read_text())
            [host] = [n for n, host in enumerate(self.hosts) if host.runs(int(start["pid"]))]
            found.append((float(start["at"]), float(end["at"]), host))
        return sorted(found)


@pytest.fixture
def limited_hosts(drill: Drill, tmp_path: Path) -> Iterator[LimitedHosts]:
    """tests/support/limited_worker.py on each worker host, 4 pool processes each (12 in
    all, room for four times the limit), on a Redis prefix of their own."""
    prefix = f"{drill.prefix}limits:"
    events = tmp_path / "events"
    events.mkdir()
    env = {**drill.env, "REDIS_KEY_PREFIX": prefix, "LIMITS_EVENTS_DIR": str(events)}
    hosts = [worker.host for worker in drill.workers]
    processes = []
    producer = new_celery(
        load_settings(
            REDIS_URL=drill.redis_url, BROKER_URL=drill.redis_url, REDIS_KEY_PREFIX=prefix
        )
    )
    try:
        for number, host in enumerate(hosts, start=1):
            name = f"limited{number}-{drill.network.token}"
            command = host.command(_celery_worker("tests.support.limited_worker", name, 4))
            processes.append(Process(f"drill-limited-{number}", command, env, drill.log_dir))
        for process in processes:
            wait_until_ready(process)
        yield LimitedHosts(hosts, events, producer)
    finally:
        for process in processes:
            process.stop()
        producer.close()


def _max_overlap(runs: list[tuple[float, float, int]]) -> int:
    # An end sorts before a start at the same instant: touching runs do not overlap.
    edges = sorted([(start, 1) for start, _, _ in runs] + [(end, -1) for _, end, _ in runs])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_an_accounts_concurrency_limit_holds_across_the_three_worker_hosts(
    limited_hosts: LimitedHosts,
) -> None:
    account = f"A{uuid.uuid4().hex[:6]}"
    for number in range(24):
        limited_hosts.send(account, f"{account}-{number}", hold_seconds=0.4)

    wait_for(
        lambda: len(list(limited_hosts.events.glob(f"{account}-*.end"))) == 24,
        timeout=120,
        interval=0.2,
        what="all 24 runs to finish",
    )
    runs = limited_hosts.runs(account)

    assert _max_overlap(runs) == LIMITED_JOB_LIMIT  # reached, never passed
    assert {host for _, _, host in runs} == {0, 1, 2}
    # Runs on different hosts overlapped: the limit was shared, not enforced per host.
    assert any(
        a_start < b_end and b_start < a_end and a_host != b_host
        for a_start, a_end, a_host in runs
        for b_start, b_end, b_host in runs
    )


# 3. A host cut off mid-run -----------------------------------------------------------------


def test_a_host_cut_off_mid_run_has_its_messages_finished_once_by_the_others(
    on_drill: Drill, tmp_path: Path
) -> None:
    drill = on_drill
    cut, others = drill.workers[2], drill.workers[:2]
    # Enough pages that both of the third host's pool processes take one of the account's
    # batches (one a page) while the other hosts go on with theirs.
    inbox = seed_inbox(tmp_path, CUT_RUN_MESSAGES)
    cut.close_gate()  # its runs stop at their first archive or send, messages unacked
    try:
        job_id = start_run(drill.webs[1], inbox)
        # Cut only once both its pool processes wait at the gate, each holding one of the
        # account's three slots: a run caught anywhere else (say, just admitted) would
        # keep a third slot for its whole lease (the hard time limit + 30 s: six minutes)
        # and starve the others. Production's visibility timeout outlasts that lease.
        wait_for(
            lambda: (
                len(cut.held()) == WORKER_PROCESSES
                and (job := bulk_process.get(job_id)) is not None
                and job.all_queued
            ),
            timeout=90,
            what="every pool process of the third host to be mid-action, every page fetched",
        )
        held = cut.held()
        cut.host.cut()
        cut_at = time.monotonic()
        assert not cut.host.reaches(drill.network.gateway, REDIS_PORT)

        # Only the others can go on: the held messages come back to the queue once their
        # visibility timeout has passed, and the others take them. All of them but one
        # broker message at most (a page's batch: BATCH_MAX worker jobs): a message
        # Redis handed the cut host's waiting BRPOP just as the link went is out of the
        # list, and kombu records it as unacked only once the worker reads the answer,
        # so it travels with the link (README, "Running at scale").
        job = wait_for(
            partial(done_or_drained, drill, others, job_id),
            timeout=VISIBILITY_SECONDS + 90,
            interval=0.5,
            what="the other hosts to finish all the broker holds of the run",
        )
        recovered_in = time.monotonic() - cut_at
        in_flight = job.emails_queued - job.processed - job.failed
        assert in_flight <= BATCH_MAX

        # The cut host comes back and goes on with what it held, all done by now.
        healed_at = len(cut.process.log())
        cut.open_gate()
        cut.host.restore()
        wait_for(
            lambda: cut.host.reaches(drill.network.gateway, REDIS_PORT),
            timeout=30,
            what="the third host to reach Redis again",
        )
        wait_for(
            lambda: (
                all(unfinished(w.process.log(), job_id) == 0 for w in drill.workers)
                and broker_holds(drill, job_id) == 0
            ),
            timeout=120,
            interval=0.5,
            what="every host to finish what it holds of the run, and the broker to hold none",
        )
        job = wait_completed(job_id, timeout=30, what="the run to complete")
    finally:
        cut.host.restore()
        cut.open_gate()

    late = finished_runs(cut.process.log()[healed_at:], job_id)
    assert len(late) >= len(held)  # the held runs, and any message it had reserved
    # The others ran every held run again and applied the rules; the held runs went on
    # with effects already made (a held batch read its messages' results before the
    # gate), which the exact count of effects below shows were made once. Only the
    # messages in flight at the cut, if any, were first run here.
    done_elsewhere = finished_runs("".join(w.process.log() for w in others), job_id)
    first_here = [task for task in late if task not in done_elsewhere]
    assert sum(len(late[task]) for task in first_here) == in_flight
    assert all(
        any(d.startswith(("rules applied", "rules no_match")) for d in done_elsewhere[task])
        for task in late
        if task in done_elsewhere
    )
    assert effects(inbox, job.id) == exactly_once(inbox)
    report(
        "worker host cut off mid-run",
        messages=CUT_RUN_MESSAGES,
        held_at_the_gate=len(held),
        finished_late_on_the_cut_host=len(late),
        visibility_timeout_seconds=VISIBILITY_SECONDS,
        in_flight_at_the_cut=in_flight,
        seconds_from_cut_to_drained=round(recovered_in, 1),
    )


# 4. Several accounts at once: what the hosts can do ----------------------------------------


def test_runs_of_four_accounts_at_once_spread_over_every_host_and_each_completes_once(
    on_drill: Drill, tmp_path: Path
) -> None:
    drill = on_drill
    inboxes = [seed_inbox(tmp_path / f"account{n}", 150) for n in range(4)]
    deferred_before, cpu_before = deferrals(drill), cpu_used(drill)

    started = time.monotonic()
    jobs = [start_run(drill.webs[n % 2], inbox) for n, inbox in enumerate(inboxes)]
    for job_id in jobs:
        wait_completed(job_id, timeout=180, what=f"run {job_id} to complete")
    seconds = time.monotonic() - started

    for inbox, job_id in zip(inboxes, jobs, strict=True):
        assert effects(inbox, job_id) == exactly_once(inbox)
    per_host = [
        sum(counts) for counts in zip(*(runs_per_host(drill, j) for j in jobs), strict=True)
    ]
    assert all(runs > 0 for runs in per_host), per_host
    processes = len(drill.workers) * WORKER_PROCESSES
    report(
        "bulk runs, four accounts at once (limits leave every process busy)",
        messages=600,
        seconds=round(seconds, 1),
        messages_per_second=round(600 / seconds, 1),
        per_pool_process=round(600 / seconds / processes, 2),
        pool_processes=processes,
        runs_per_host=per_host,
        deferrals=deferrals(drill) - deferred_before,
        cpu_ms_per_message=cpu_ms_per_message(cpu_before, 600, drill),
    )
