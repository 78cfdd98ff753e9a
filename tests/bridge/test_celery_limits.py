"""Per-key limits on the Celery path: the Lua scripts on their own, then a real worker.

The registered jobs declare no limits, so the end-to-end tests run a worker of their
own (tests/support/limited_worker.py: the `tasks` app plus test-only limited jobs) on a
Redis prefix of its own, with enough pool processes (10) that only the semaphore can
hold an account to 3 runs at once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from bridge.celery import limits
from bridge.celery.app import say_when_limits_are_off
from bridge.celery.producer import new_celery
from bridge.celery.tasks import limited_key
from bridge.outcome import Delivery, Result, done
from bridge.payload import Payload
from bridge.registry import JobDeclarationError, JobSpec, Registry, Throttle, validate_job
from bridge.store import redis_store
from config import load_settings
from tests.support.services import Process, delete_redis_prefix, wait_until_ready
from tests.support.wait import wait_for

# --- the scripts, against the suite's own Redis prefix ------------------------------


def _policy(
    concurrency: int | None = None, throttle: tuple[int, int] | None = None
) -> limits.Policy:
    return limits.Policy(
        fn_id=f"unit-{uuid.uuid4().hex[:8]}",
        concurrency=concurrency,
        throttle_limit=throttle[0] if throttle else None,
        throttle_period_seconds=throttle[1] if throttle else None,
    )


def _holders(policy: limits.Policy, value: str) -> int:
    return int(redis_store.client().zcard(limits.holders_key(policy.fn_id, value)))


def _starts(policy: limits.Policy, value: str) -> int:
    return int(redis_store.client().zcard(limits.starts_key(policy.fn_id, value)))


def test_slots_up_to_the_concurrency_then_refused_until_one_is_released() -> None:
    policy = _policy(concurrency=3)
    for token in ("t1", "t2", "t3"):
        assert limits.try_start(policy, "acct-a", token, lease=60).admitted
    refused = limits.try_start(policy, "acct-a", "t4", lease=60)
    assert (refused.admitted, refused.reason) == (False, "concurrency")
    assert _holders(policy, "acct-a") == 3  # a refusal takes nothing

    limits.release(policy, "acct-a", "t2")
    assert limits.try_start(policy, "acct-a", "t4", lease=60).admitted
    assert not limits.try_start(policy, "acct-a", "t5", lease=60).admitted


def test_each_key_value_and_each_job_has_its_own_slots() -> None:
    policy, other_job = _policy(concurrency=1), _policy(concurrency=1)
    assert limits.try_start(policy, "acct-a", "a1", lease=60).admitted
    assert not limits.try_start(policy, "acct-a", "a2", lease=60).admitted
    assert limits.try_start(policy, "acct-b", "b1", lease=60).admitted
    assert limits.try_start(other_job, "acct-a", "x1", lease=60).admitted


def test_release_is_idempotent_and_ignores_strangers() -> None:
    policy = _policy(concurrency=2)
    assert limits.try_start(policy, "acct", "mine", lease=60).admitted
    limits.release(policy, "acct", "someone-else")
    assert _holders(policy, "acct") == 1
    limits.release(policy, "acct", "mine")
    limits.release(policy, "acct", "mine")
    assert _holders(policy, "acct") == 0


def test_a_holder_that_never_releases_loses_its_slot_when_its_lease_ends() -> None:
    policy = _policy(concurrency=2)
    taken = time.monotonic()
    assert limits.try_start(policy, "acct", "dead-1", lease=0.3).admitted
    assert limits.try_start(policy, "acct", "dead-2", lease=0.3).admitted
    assert not limits.try_start(policy, "acct", "next", lease=60).admitted

    wait_for(
        lambda: limits.try_start(policy, "acct", "next", lease=60).admitted,
        timeout=5,
        what="the dead holders' leases to end",
    )
    assert time.monotonic() - taken >= 0.29
    members = redis_store.client().zrange(limits.holders_key(policy.fn_id, "acct"), 0, -1)
    assert members == [b"next"]  # the expired holders were dropped, not counted


def test_the_holders_key_disappears_once_idle() -> None:
    policy = _policy(concurrency=1)
    assert limits.try_start(policy, "acct", "t1", lease=30).admitted
    key = limits.holders_key(policy.fn_id, "acct")
    assert key.startswith(load_settings().redis_key_prefix + redis_store.LIMIT_HOLDERS)
    assert 0 < redis_store.client().pttl(key) <= 30_000


def test_throttle_admits_limit_starts_per_window_and_says_when_to_come_back() -> None:
    policy = _policy(throttle=(2, 1))
    first = time.monotonic()
    assert limits.try_start(policy, "acct", "s1", lease=60).admitted
    assert limits.try_start(policy, "acct", "s2", lease=60).admitted
    refused = limits.try_start(policy, "acct", "s3", lease=60)
    assert (refused.admitted, refused.reason) == (False, "throttle")
    assert 0 < refused.wait_seconds <= 1.0
    assert limits.try_start(policy, "acct-other", "o1", lease=60).admitted  # per key

    wait_for(
        lambda: limits.try_start(policy, "acct", "s3", lease=60).admitted,
        timeout=5,
        what="the first start to leave the window",
    )
    assert time.monotonic() - first >= 0.99
    # s3 is in the window, and s2 too unless it left while we polled: one more at most.
    more = [limits.try_start(policy, "acct", token, lease=60).admitted for token in ("s4", "s5")]
    assert more in ([False, False], [True, False])
    assert 0 < redis_store.client().pttl(limits.starts_key(policy.fn_id, "acct")) <= 1000


def test_a_refused_run_takes_neither_a_slot_nor_a_start() -> None:
    slot_bound = _policy(concurrency=1, throttle=(5, 60))
    assert limits.try_start(slot_bound, "acct", "r1", lease=60).admitted
    assert limits.try_start(slot_bound, "acct", "r2", lease=60).reason == "concurrency"
    assert _starts(slot_bound, "acct") == 1

    rate_bound = _policy(concurrency=5, throttle=(1, 60))
    assert limits.try_start(rate_bound, "acct", "r1", lease=60).admitted
    assert limits.try_start(rate_bound, "acct", "r2", lease=60).reason == "throttle"
    assert _holders(rate_bound, "acct") == 1


def test_lease_is_the_hard_time_limit_plus_a_margin() -> None:
    assert limits.lease_seconds(330) == 330 + limits.HOLDER_MARGIN_SECONDS


def test_come_back_waits_grow_are_capped_and_jittered() -> None:
    rng = random.Random(7)
    full = limits.Decision(False, "concurrency")
    first = [limits.come_back_in(full, 0, rng) for _ in range(50)]
    later = [limits.come_back_in(full, 40, rng) for _ in range(50)]
    start = limits.FIRST_WAIT_SECONDS
    assert all(start / 2 <= wait <= start for wait in first) and len(set(first)) > 1
    assert all(limits.MAX_WAIT_SECONDS / 2 <= wait <= limits.MAX_WAIT_SECONDS for wait in later)
    throttled = limits.Decision(False, "throttle", wait_seconds=0.4)
    assert all(0.4 < limits.come_back_in(throttled, 9, rng) <= 0.52 for _ in range(50))


class _Keyed(Payload):
    email_account_id: str


def _body(payload: _Keyed, delivery: Delivery) -> Result:
    return done()


def test_policy_comes_from_the_declaration_and_a_bad_throttle_fails() -> None:
    def spec(**options: Any) -> JobSpec[_Keyed]:
        return JobSpec(
            event="inbox-zero/t.x",
            name="t.x",
            route="/api/t/x",
            payload=_Keyed,
            body=_body,
            **options,
        )

    assert limits.policy_for(spec()) is None
    policy = limits.policy_for(spec(concurrency=3, throttle=Throttle(6, 1)))
    assert policy == limits.Policy("t-x", 3, 6, 1)
    with pytest.raises(JobDeclarationError, match="throttle"):
        validate_job(spec(throttle=Throttle(0, 1)))


def test_what_a_run_counts_against(configure: Any) -> None:
    spec: JobSpec[_Keyed] = JobSpec(
        event="inbox-zero/t.x",
        name="t.x",
        route="/api/t/x",
        payload=_Keyed,
        body=_body,
        concurrency=3,
    )
    policy = limits.policy_for(spec)
    assert limited_key(spec, policy, {"emailAccountId": "acct-1"}) == "acct-1"
    assert limited_key(spec, policy, {"scheduledActionId": "x"}) is None  # invalid: run_job
    assert limited_key(spec, None, {"emailAccountId": "acct-1"}) is None  # no limits
    configure(REDIS_URL=None)  # the embedded broker: nothing to count in, the job just runs
    assert limited_key(spec, policy, {"emailAccountId": "acct-1"}) is None


def test_worker_start_says_limits_are_off_without_redis(
    configure: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(event_prefix="inbox-zero/")
    registry.job(
        event="inbox-zero/t.limited", route="/api/t/limited", payload=_Keyed, concurrency=1
    )(_body)
    caplog.set_level(logging.WARNING, logger="jobbridge.celery")
    say_when_limits_are_off(registry)
    assert caplog.records == []  # Redis is configured: enforced, nothing to say

    configure(REDIS_URL=None)
    say_when_limits_are_off(registry)
    [record] = caplog.records
    message = record.getMessage()
    assert "NOT enforced without REDIS_URL" in message and "t.limited" in message


# --- a real worker ---------------------------------------------------------------


@dataclass
class LimitedWorker:
    prefix: str
    events: Path
    producer: Celery
    process: Process

    def send(self, event: str, account: str, label: str, **fields: Any) -> None:
        payload = {"emailAccountId": account, "label": label, **fields}
        self.producer.send_task(event, kwargs={"payload": payload}, task_id=f"{label}-task")

    def record(self, label: str, attempt: int, what: str) -> dict[str, Any] | None:
        path = self.events / f"{label}.{attempt}.{what}"
        return json.loads(path.read_text()) if path.exists() else None

    def runs(self, label_prefix: str) -> list[tuple[float, float, int]]:
        """(start, end, attempt) of every finished run whose label starts with the prefix."""
        found = []
        for end_path in self.events.glob(f"{label_prefix}*.end"):
            label, attempt, _ = end_path.name.rsplit(".", 2)
            start = self.record(label, int(attempt), "start")
            assert start is not None
            end = json.loads(end_path.read_text())
            found.append((float(start["at"]), float(end["at"]), int(attempt)))
        return sorted(found)


@pytest.fixture(scope="module")
def limited_worker(
    tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[LimitedWorker]:
    # A prefix of its own: no other worker takes these tasks, nor knows these jobs.
    prefix = f"jblimits-{uuid.uuid4().hex[:8]}:"
    events = tmp_path_factory.mktemp("limit-events")
    env = {**os.environ, "REDIS_KEY_PREFIX": prefix, "LIMITS_EVENTS_DIR": str(events)}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.support.limited_worker",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "10",
        "--loglevel",
        "INFO",
        "--hostname",
        f"limited-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    process = Process("limited-worker", command, env, log_dir)
    producer = new_celery(load_settings(REDIS_KEY_PREFIX=prefix))

    try:
        wait_until_ready(process)
        yield LimitedWorker(prefix, events, producer, process)
    finally:
        process.stop()
        producer.close()
        delete_redis_prefix(prefix)


def _max_overlap(runs: list[tuple[float, float, int]]) -> int:
    # An end sorts before a start at the same instant: touching runs do not overlap.
    edges = sorted([(start, 1) for start, _, _ in runs] + [(end, -1) for _, end, _ in runs])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_three_at_a_time_per_account_while_other_accounts_run(
    limited_worker: LimitedWorker, configure: Any
) -> None:
    worker = limited_worker
    a, b = f"A{uuid.uuid4().hex[:6]}", f"B{uuid.uuid4().hex[:6]}"
    for number in range(10):
        worker.send("inbox-zero/test.limited", a, f"{a}-{number}", holdSeconds=1.0)
    for number in range(3):  # queued behind all of A's
        worker.send("inbox-zero/test.limited", b, f"{b}-{number}", holdSeconds=0.3)

    wait_for(
        lambda: len(worker.runs(a)) == 10 and len(worker.runs(b)) == 3,
        timeout=60,
        what="all 13 runs to finish",
    )
    runs_a, runs_b = worker.runs(a), worker.runs(b)

    assert _max_overlap(runs_a) == 3
    # The pool had room for more than three: only the semaphore held A back.
    assert _max_overlap(runs_a + runs_b) > 3
    # B did not wait behind A's queue: each B run was over before A's last one started.
    last_a_start = max(start for start, _, _ in runs_a)
    assert all(end < last_a_start for _, end, _ in runs_b)
    # Waiting for a slot is not an attempt: every run saw attempt 0, and the retry
    # budget (retries=1) was never touched.
    assert {attempt for _, _, attempt in runs_a + runs_b} == {0}
    assert worker.process.log().count("LimitReached") >= 7

    configure(REDIS_KEY_PREFIX=worker.prefix)
    wait_for(  # given back on the way out (the end is recorded just before)
        lambda: redis_store.client().zcard(limits.holders_key("test-limited", a)) == 0,
        timeout=5,
        what="A's slots to be released",
    )


def test_slots_are_given_back_when_a_run_fails_or_retries(
    limited_worker: LimitedWorker, configure: Any
) -> None:
    worker = limited_worker
    account = f"C{uuid.uuid4().hex[:6]}"
    worker.send(
        "inbox-zero/test.limited", account, f"{account}-fail", holdSeconds=0.05, outcome="fail"
    )
    worker.send(
        "inbox-zero/test.limited", account, f"{account}-retry", holdSeconds=0.05, outcome="retry"
    )

    wait_for(
        lambda: (
            worker.record(f"{account}-fail", 0, "end")
            and worker.record(f"{account}-retry", 1, "end")  # retried once (retries=1)
        ),
        timeout=30,
        what="the failing run and both runs of the retrying one",
    )
    configure(REDIS_KEY_PREFIX=worker.prefix)
    # A slot left behind would stay for its whole 13 s lease.
    wait_for(
        lambda: redis_store.client().zcard(limits.holders_key("test-limited", account)) == 0,
        timeout=3,
        what="the slots to be released",
    )
    assert worker.process.log().count("JobFailed") >= 2


def test_a_killed_holders_slot_comes_back_when_its_lease_ends(
    limited_worker: LimitedWorker, configure: Any
) -> None:
    worker = limited_worker
    account = f"D{uuid.uuid4().hex[:6]}"
    label = f"{account}-crash"
    configure(REDIS_KEY_PREFIX=worker.prefix)
    key = limits.holders_key("test-single", account)
    worker.send("inbox-zero/test.single", account, label, holdSeconds=0.1, crashOnce=True)

    pid = int(
        wait_for(
            lambda: (
                (worker.events / f"{label}.pid").read_text()
                if (worker.events / f"{label}.pid").exists()
                else ""
            ),
            timeout=30,
            what="the first run to hang holding the only slot",
        )
    )
    holders = redis_store.client().zrange(key, 0, -1, withscores=True)
    assert len(holders) == 1
    lease_ends_ms = float(holders[0][1])
    os.kill(pid, signal.SIGKILL)  # no finally runs: the slot is never released

    start = wait_for(
        lambda: worker.record(label, 1, "start"), timeout=30, what="the redelivery to run"
    )
    wait_for(lambda: worker.record(label, 1, "end"), timeout=10, what="the redelivery to end")
    assert start is not None  # wait_for returned it: truthy

    # The redelivery waited for the dead holder's lease rather than running beside it...
    assert float(start["at"]) * 1000 >= lease_ends_ms - 1
    assert "WorkerLostError" in worker.process.log()
    assert f"{label}-task] retry" in worker.process.log()  # ...by coming back later
    # ...and kept its attempt number across those deferrals: 1, a redelivery.
    assert worker.record(label, 0, "start") is None
    wait_for(lambda: redis_store.client().zcard(key) == 0, timeout=5, what="the slot's release")


def test_throttle_allows_at_most_limit_starts_per_period(limited_worker: LimitedWorker) -> None:
    worker = limited_worker
    account = f"E{uuid.uuid4().hex[:6]}"
    for number in range(5):
        worker.send("inbox-zero/test.throttled", account, f"{account}-{number}", holdSeconds=0.01)

    wait_for(lambda: len(worker.runs(account)) == 5, timeout=30, what="5 throttled runs")
    starts = [start for start, _, _ in worker.runs(account)]
    # Two starts per second: any three consecutive starts span at least a second
    # (less a little: a run records its start just after Redis admitted it).
    assert all(starts[i + 2] - starts[i] >= 0.9 for i in range(len(starts) - 2))
    assert {attempt for _, _, attempt in worker.runs(account)} == {0}
