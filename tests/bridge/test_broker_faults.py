"""Exactly once when the network or a whole worker fails mid-action (issue 7, item 4).

Real Celery workers (tests/support/fault_worker.py: the `tasks` app with leases and the
Redis visibility timeout in seconds, and Maildir sends held at a gate the test opens)
reach Redis or PostgreSQL through a TCP proxy the test cuts (tests/support/tcp_proxy.py).
Each scenario holds a scheduled send in progress, past its claim, breaks something, and
then checks the one thing that matters: one copy in Sent and the row COMPLETED.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery import Celery

from bridge.celery.config import BROKER_HEALTH_CHECK_SECONDS
from bridge.celery.producer import new_celery
from config import load_settings
from tasks import scheduled_actions
from tasks.mail.maildir import MaildirProvider
from tasks.mail.port import OutgoingMail
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.conftest import Mailbox
from tests.support.actions import insert_action
from tests.support.services import TEST_REDIS_URL, Process, delete_redis_prefix, wait_until_ready
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import wait_for

EXECUTE = "inbox-zero/scheduled-action.execute"
DATABASE_URL = os.environ["DATABASE_URL"]  # this run's database (tests/conftest.py)
CUT_SECONDS = 2.0  # how long each network fault lasts


# --- the Maildir send: one copy per key, whoever races ------------------------------


def _send_in_lockstep(root: str, keys: list[str], barrier: Any, results: Any) -> None:
    mail = MaildirProvider(root)
    for key in keys:
        barrier.wait()  # every process sends this key at the same moment
        outgoing = OutgoingMail(to="a@example.test", subject=key, body="hi", idempotency_key=key)
        results.put((key, mail.send(outgoing)))


def test_concurrent_sends_with_one_key_put_exactly_one_copy_in_sent(tmp_path: Path) -> None:
    root, processes, keys = tmp_path / "maildir", 4, [f"key-{n}" for n in range(25)]
    MaildirProvider(root).folder("Sent")  # the folder exists before the race starts
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    senders = [
        context.Process(target=_send_in_lockstep, args=(str(root), keys, barrier, results))
        for _ in range(processes)
    ]
    for sender in senders:
        sender.start()
    answers = [results.get(timeout=60) for _ in range(processes * len(keys))]
    for sender in senders:
        sender.join(timeout=30)

    sent = MaildirProvider(root).folder("Sent")
    assert sorted(message["Subject"] for message in sent) == sorted(keys)
    # Every sender of a key was told the key of that one copy.
    assert {key: {a for k, a in answers if k == key} for key in keys} == {
        message["Subject"]: {stored} for stored, message in sent.items()
    }
    assert not list((root / ".Sent" / "tmp").iterdir())  # no partial file left behind


# --- real workers, real faults ------------------------------------------------------


@dataclass
class Faults:
    """One scenario's world: a Redis prefix no other worker reads, the gate, the mailbox."""

    prefix: str
    gate: Path
    mailbox: Mailbox
    log_dir: Path
    producer: Celery

    def worker(self, name: str, lease: float, visibility: float, **env: str) -> Process:
        environment = {
            **os.environ,
            "REDIS_KEY_PREFIX": self.prefix,
            # Retries come back within seconds (a countdown is capped at the horizon).
            "CELERY_ETA_HORIZON_SECONDS": "2",
            "FAULT_GATE_DIR": str(self.gate),
            "FAULT_LEASE_SECONDS": str(lease),
            "FAULT_VISIBILITY_SECONDS": str(visibility),
            **env,
        }
        command = [
            sys.executable, "-m", "celery", "-A", "tests.support.fault_worker", "worker",
            "--pool", "prefork", "--concurrency", "2", "--loglevel", "INFO",
            "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        return wait_until_ready(Process(name, command, environment, self.log_dir))

    def schedule_send(self) -> ScheduledAction:
        """A SEND_EMAIL action that is due, published to this scenario's workers."""
        row = insert_action(
            self.mailbox.account_id,
            ActionType.SEND_EMAIL,
            self.mailbox.keys[0],
            scheduled_for=utcnow() - timedelta(seconds=1),
            to="friend@example.test",
            subject="the one and only",
            content="hello",
        )
        self.producer.send_task(
            EXECUTE, kwargs={"payload": {"scheduledActionId": row.id}}, task_id=f"fault-{row.id}"
        )
        return row

    def entered(self) -> list[Path]:
        return sorted(self.gate.glob("entered.*"))

    def open_gate(self) -> None:
        (self.gate / "open").touch()

    def sent(self) -> int:
        return len(self.mailbox.folder_keys("Sent"))

    def completed(self, action_id: str, within: float = 45) -> ScheduledAction:
        def finished() -> ScheduledAction | None:
            row = scheduled_actions.get(action_id)
            return row if row is not None and row.status is ActionStatus.COMPLETED else None

        what = f"action {action_id} to complete"
        row = wait_for(finished, timeout=within, interval=0.1, what=what)
        assert row is not None
        return row


@pytest.fixture
def faults(mailbox: Mailbox, tmp_path: Path, log_dir: Path) -> Iterator[Faults]:
    prefix = f"jbfault-{uuid.uuid4().hex[:8]}:"
    gate = tmp_path / "gate"
    gate.mkdir()
    producer = new_celery(load_settings(REDIS_KEY_PREFIX=prefix))
    world = Faults(prefix, gate, mailbox, log_dir, producer)
    yield world
    if world.producer is not producer:  # a scenario's own broker
        world.producer.close()
    producer.close()
    delete_redis_prefix(prefix)


def _via(url: str, proxy: TcpProxy) -> str:
    """The same URL with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{proxy.address}" if credentials else proxy.address
    return urlunsplit(parts._replace(netloc=netloc))


def _proxy_for(url: str) -> TcpProxy:
    """A proxy to the server the URL names (its port written out, as the suite's are)."""
    parts = urlsplit(url)
    assert parts.port is not None, f"{url} names no port"
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port)


def _hold_cut(proxy: TcpProxy, started: float, until: Callable[[], object], what: str) -> None:
    """Keep the proxy cut until `until()` holds and at least CUT_SECONDS have passed."""
    wait_for(until, timeout=20, what=what)
    remaining = started + CUT_SECONDS - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)  # the fault's length, not a wait for anything
    proxy.restore()


def test_a_redis_drop_mid_send_stops_the_run_and_the_redelivery_sends_once(
    faults: Faults,
) -> None:
    with _proxy_for(TEST_REDIS_URL) as redis_proxy:
        worker = faults.worker(
            "redis-cut",
            lease=3,
            visibility=6,
            REDIS_URL=_via(TEST_REDIS_URL, redis_proxy),
            # Not the kombu race that stops the whole worker (see fault_worker.py).
            FAULT_WITHOUT_REMOTE_CONTROL="1",
        )
        try:
            row = faults.schedule_send()
            wait_for(faults.entered, timeout=30, what="the send to be in progress")
            started = time.monotonic()
            redis_proxy.cut()
            _hold_cut(
                redis_proxy,
                started,
                # Celery's words for stopping a run whose message it can no longer ack.
                lambda: "cannot be acknowledged after a connection loss" in worker.log(),
                "the worker to stop the run it can no longer acknowledge",
            )
            faults.open_gate()  # too late for the stopped run: only a new one can send
            done = faults.completed(row.id)
        finally:
            worker.stop()

    assert faults.sent() == 1
    assert (done.status, done.error) == (ActionStatus.COMPLETED, None)
    # The message came back (the visibility timeout), and its run took the row over once
    # the stopped run's lease had run out.
    assert done.execution_attempts == 2


def _blocked_in_redis(proxy: TcpProxy) -> bool:
    """Whether Redis is holding a blocking command (a BRPOP) of a connection through the
    proxy: a message published now could be handed to it."""
    addresses = proxy.upstream_addresses
    clients = redis.Redis.from_url(TEST_REDIS_URL).client_list()
    return any(client["addr"] in addresses and "b" in client["flags"] for client in clients)


def test_a_worker_whose_redis_connections_went_silent_takes_new_work_within_seconds(
    faults: Faults,
) -> None:
    """A NAT or firewall dropped the state of the worker's connections: Redis never hears
    the worker again on them, nor the worker Redis. kombu's health check drops a BRPOP
    whose reply is overdue by 1 s + its interval, looking once an interval, and the
    worker waits on a new connection: within 1 s + twice the interval (11 s here; 26 to
    51 s with kombu's default interval of 25 s)."""
    with _proxy_for(TEST_REDIS_URL) as redis_proxy:
        worker = faults.worker(
            "redis-stall",
            lease=30,
            visibility=120,  # no copy of the message is handed out again here
            REDIS_URL=_via(TEST_REDIS_URL, redis_proxy),
            FAULT_WITHOUT_REMOTE_CONTROL="1",
        )
        try:
            faults.open_gate()
            redis_proxy.stall()
            # The BRPOP Redis holds now ends on its own 1 s timeout; a message published
            # before then would travel with the dead link (README, "Running at scale").
            wait_for(
                lambda: not _blocked_in_redis(redis_proxy),
                timeout=10,
                what="Redis to end the stalled connection's BRPOP",
            )
            row = faults.schedule_send()  # straight to Redis, not through the proxy
            done = faults.completed(row.id, within=1 + 2 * BROKER_HEALTH_CHECK_SECONDS + 10)
        finally:
            worker.stop()

    assert "dropping stale connection" in worker.log()
    assert faults.sent() == 1
    assert done.execution_attempts == 1


def test_a_redelivered_copy_waits_while_the_first_run_holds_its_lease(faults: Faults) -> None:
    # A visibility timeout shorter than the run: Redis hands the message out again, flagged
    # redelivered and with the same task id, while its first run is still sending.
    worker = faults.worker("copy", lease=3, visibility=3)
    try:
        row = faults.schedule_send()
        wait_for(faults.entered, timeout=30, what="the send to be in progress")
        wait_for(
            lambda: "another run is executing it" in worker.log() or len(faults.entered()) > 1,
            timeout=30,
            what="the redelivered copy to be told to come back later",
        )
        assert len(faults.entered()) == 1  # the copy did not take the row over
        faults.open_gate()
        done = faults.completed(row.id)
        wait_for(
            lambda: "action is COMPLETED" in worker.log(),
            timeout=30,
            what="the copy to come back and find the action completed",
        )
    finally:
        worker.stop()

    assert faults.sent() == 1
    assert (done.execution_attempts, len(faults.entered())) == (1, 1)


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_an_action_whose_whole_worker_was_killed_completes_once_on_another_worker(
    faults: Faults, tmp_path: Path, broker: str
) -> None:
    # Redis gives the message back after its visibility timeout; the embedded broker's
    # next consumer gives back what a consumer whose process is gone had taken.
    env: dict[str, str] = {}
    if broker == "embedded":
        data_dir = tmp_path / "data"
        env = {"REDIS_URL": "", "BROKER_URL": "", "DATA_DIR": str(data_dir)}
        faults.producer = new_celery(load_settings(redis_url=None, data_dir=data_dir))
    first = faults.worker("killed", lease=2, visibility=4, **env)
    try:
        row = faults.schedule_send()
        wait_for(faults.entered, timeout=30, what="the send to be in progress")
        # The whole worker, main process and pool alike: nothing acks, nothing requeues.
        os.killpg(first.popen.pid, signal.SIGKILL)
        first.popen.wait(timeout=10)
    finally:
        first.stop()
    faults.open_gate()
    second = faults.worker("successor", lease=2, visibility=4, **env)
    try:
        done = faults.completed(row.id)
    finally:
        second.stop()

    assert faults.sent() == 1
    assert (done.status, done.execution_attempts) == (ActionStatus.COMPLETED, 2)
    # The killed run reached the send, and so did the successor's, in another process.
    assert len({path.read_text() for path in faults.entered()}) == 2


def test_a_database_drop_mid_send_is_ridden_out_by_the_running_run(faults: Faults) -> None:
    with _proxy_for(DATABASE_URL) as db_proxy:
        worker = faults.worker(
            "db-blip", lease=5, visibility=60, DATABASE_URL=_via(DATABASE_URL, db_proxy)
        )
        try:
            row = faults.schedule_send()
            wait_for(faults.entered, timeout=30, what="the send to be in progress")
            started = time.monotonic()
            db_proxy.cut()
            _hold_cut(
                db_proxy,
                started,
                lambda: "could not renew the lease" in worker.log(),
                "a heartbeat to miss the database",
            )
            faults.open_gate()
            done = faults.completed(row.id)
        finally:
            worker.stop()

    assert faults.sent() == 1
    # The same run finished: it kept its claim through the outage.
    assert (done.status, done.execution_attempts) == (ActionStatus.COMPLETED, 1)


def test_a_send_that_lands_while_the_database_is_down_is_retried_not_repeated(
    faults: Faults,
) -> None:
    with _proxy_for(DATABASE_URL) as db_proxy:
        worker = faults.worker(
            "db-down", lease=2, visibility=60, DATABASE_URL=_via(DATABASE_URL, db_proxy)
        )
        try:
            row = faults.schedule_send()
            wait_for(faults.entered, timeout=30, what="the send to be in progress")
            started = time.monotonic()
            db_proxy.cut()
            faults.open_gate()  # the mail goes out; recording it cannot
            _hold_cut(
                db_proxy,
                started,
                # The run's log line for a body that raised: here, recording the send.
                lambda: faults.sent() == 1 and "raised on celery delivery" in worker.log(),
                "the send to land and its run to fail to record it",
            )
            done = faults.completed(row.id)
        finally:
            worker.stop()

    assert faults.sent() == 1
    # A second run took the row over and found the mail already sent.
    assert (done.status, done.execution_attempts) == (ActionStatus.COMPLETED, 2)
