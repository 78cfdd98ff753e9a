"""Enqueue and delivery benchmark: jobbridge against the plain calls it wraps, in one run.

    .venv/bin/python bench/enqueue.py [--rounds N] [--strict]

Rows (each against a baseline measured in this same run, rounds alternated so that
drift of a shared 2-core machine hits both sides alike):

  a) `enqueue` on Celery (Redis) against a raw `apply_async` loop of the same task
  b) `enqueue_many` on Celery against the same raw loop
  c) `enqueue_many` on Inngest to a local event-API sink (5,000 events a request)
     against plain POSTs of the same events to the same sink
  d) one delivery through the QStash route and through `/api/inngest`, served by
     uvicorn[standard] on 127.0.0.1, against calling the job body directly

The job is `execute_scheduled_action` on ids that do not exist: its body does one
database lookup and answers "skipped", so the direct call does the same lookup and
only the bridge's own work differs.

Everything it uses is its own and removed at the end: a Redis key prefix (no worker
consumes; the queue is purged), a PostgreSQL database, a sink process and a web server,
all on loopback. Progress goes to stderr; the one table goes to stdout.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
EVENT_KEY = "bench-event-key"
SIGNING_KEY = "signkey-test-" + "ab12" * 16  # hex after the prefix, as the SDK requires
# 32 bytes or more: PyJWT warns about shorter HMAC keys.
QSTASH_CURRENT_KEY = "sig_bench_current_0123456789abcdef"
QSTASH_NEXT_KEY = "sig_bench_next_0123456789abcdef012"
# QStash signs the public URL; the route rebuilds it from WEBHOOK_URL, never from the request.
WEBHOOK_URL = "https://jobs.bench.invalid"
INNGEST_APP_ID = "inbox-zero"

# Sizes per round, and a time limit on every measured loop.
CELERY_ONE_JOBS = 500
CELERY_MANY_JOBS = 1_000
INNGEST_JOBS = 20_000
INNGEST_EVENTS_PER_REQUEST = 5_000  # the Inngest publisher's batch size, checked by the sink
DELIVERIES = 150
ROUND_SECONDS = 20.0
START_SECONDS = 30.0

# Variables the bench sets itself; anything inherited from the shell is dropped first.
CONTROLLED_ENV = (
    "INNGEST_EVENT_KEY",
    "INNGEST_SIGNING_KEY",
    "INNGEST_SIGNING_KEY_FALLBACK",
    "INNGEST_BASE_URL",
    "INNGEST_DEV",
    "INNGEST_SERVE_ORIGIN",
    "INNGEST_APP_ID",
    "QSTASH_TOKEN",
    "QSTASH_URL",
    "QSTASH_CURRENT_SIGNING_KEY",
    "QSTASH_NEXT_SIGNING_KEY",
    "WEBHOOK_URL",
    "INTERNAL_API_URL",
    "INTERNAL_API_KEY",
    "CRON_SECRET",
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "DATABASE_URL",
    "DATA_DIR",
    "JOB_PROVIDER",
    "JOB_FAILOVER",
)


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


# --- The Inngest event API, played by a separate process ------------------------------


def run_event_sink(event_key: str, report: Connection) -> None:
    """Answer `POST /e/<key>` with a JSON array as Inngest does; `GET /stats` counts.

    A process of its own, so parsing 5,000-event bodies does not take the publisher's CPU.
    """
    stats = {"requests": 0, "events": 0, "max_events_per_request": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's httpx client expects

        def answer(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != f"/e/{event_key}":
                self.answer(401, {"error": "event key not found", "status": 401})
                return
            events = json.loads(raw)
            if not isinstance(events, list):
                events = [events]
            stats["requests"] += 1
            stats["events"] += len(events)
            stats["max_events_per_request"] = max(stats["max_events_per_request"], len(events))
            ids = [event.get("id") or uuid.uuid4().hex for event in events]
            self.answer(200, {"ids": ids, "status": 200})

        def do_GET(self) -> None:
            self.answer(200, stats)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    report.send(server.server_address[1])
    server.serve_forever()


@dataclass
class EventSink:
    process: multiprocessing.process.BaseProcess
    url: str

    @classmethod
    def start(cls) -> EventSink:
        # spawn, not fork: the parent may already hold Redis and database connections.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=run_event_sink, args=(EVENT_KEY, theirs), daemon=True)
        process.start()
        if not ours.poll(START_SECONDS):
            process.kill()
            raise RuntimeError("the event sink did not start")
        return cls(process, f"http://127.0.0.1:{ours.recv()}")

    def stats(self) -> dict[str, int]:
        import httpx

        answer: dict[str, int] = httpx.get(self.url + "/stats", timeout=5).json()
        return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


# --- Environment, database, web server ------------------------------------------------


@dataclass(frozen=True)
class Run:
    prefix: str
    database_url: str
    data_dir: Path
    sink: EventSink


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_database() -> str:
    import psycopg

    name = f"jobbridge_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_prefix(prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()


def configure(run: Run) -> None:
    """The whole configuration, in the environment before `tasks` is imported.

    The Celery app reads REDIS_URL and REDIS_KEY_PREFIX once, at import.
    """
    for name in CONTROLLED_ENV:
        os.environ.pop(name, None)
    os.environ.update(
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=run.prefix,
        DATABASE_URL=run.database_url,
        DATA_DIR=str(run.data_dir),
        INNGEST_EVENT_KEY=EVENT_KEY,
        INNGEST_SIGNING_KEY=SIGNING_KEY,
        INNGEST_BASE_URL=run.sink.url,
        INNGEST_SERVE_ORIGIN="http://127.0.0.1",  # where Inngest would call; never called here
        INNGEST_APP_ID=INNGEST_APP_ID,
        QSTASH_CURRENT_SIGNING_KEY=QSTASH_CURRENT_KEY,
        QSTASH_NEXT_SIGNING_KEY=QSTASH_NEXT_KEY,
        WEBHOOK_URL=WEBHOOK_URL,
        JOB_PROVIDER="auto",
        JOB_FAILOVER="false",
    )


@contextmanager
def web_server(log_path: Path) -> Iterator[str]:
    """`uvicorn bridge.web:app` with httptools and uvloop, one worker, on 127.0.0.1."""
    import httpx

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bridge.web:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--http",
        "httptools",
        "--loop",
        "uvloop",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"uvicorn exited:\n{log_path.read_text(errors='replace')}")
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not answer /healthz in {START_SECONDS}s")
                time.sleep(0.1)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# --- Measurement helpers ---------------------------------------------------------------


_ROUND_IDS = itertools.count(1)  # keeps task and event ids unique across rounds


def rate(jobs: Callable[[int, float], int]) -> float:
    """Jobs per second of one round; `jobs(round_id, deadline)` returns how many it did."""
    started = time.perf_counter()
    done = jobs(next(_ROUND_IDS), started + ROUND_SECONDS)
    return done / (time.perf_counter() - started)


def alternate(rounds: int, sides: dict[str, Callable[[], Any]]) -> None:
    """Run each side once per round, rotating which goes first."""
    names = list(sides)
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            sides[name]()


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


@dataclass(frozen=True)
class Row:
    name: str
    measured: str
    baseline: str
    ratio: float
    goal: str
    passed: bool


# --- a) and b): Celery on Redis ---------------------------------------------------------


def celery_rows(rounds: int, prefix: str) -> list[Row]:
    import redis

    import tasks
    from bridge import enqueue, enqueue_many
    from config import load_settings
    from tasks.scheduled_actions import ExecuteScheduledAction, execute_scheduled_action

    settings = load_settings(job_provider="celery")
    # The baseline: the worker's own Celery task, published the plain Celery way.
    task = tasks.app.tasks[execute_scheduled_action.event]
    queue = redis.Redis.from_url(REDIS_URL)

    def raw_loop(jobs: int) -> Callable[[int, float], int]:
        def run(round_id: int, deadline: float) -> int:
            for number in range(jobs):
                if time.perf_counter() > deadline:
                    return number
                task.apply_async(
                    kwargs={"payload": {"scheduledActionId": f"bench-{number}"}},
                    task_id=f"raw-{round_id}-{number}",
                )
            return jobs

        return run

    def enqueue_loop(round_id: int, deadline: float) -> int:
        for number in range(CELERY_ONE_JOBS):
            if time.perf_counter() > deadline:
                return number
            enqueue(
                execute_scheduled_action,
                ExecuteScheduledAction(scheduled_action_id=f"bench-{number}"),
                dedup_id=f"one-{round_id}-{number}",
                settings=settings,
            )
        return CELERY_ONE_JOBS

    def enqueue_many_call(round_id: int, deadline: float) -> int:
        # One call: bounded by its count; the deadline bounds the loops around it.
        receipts = enqueue_many(
            execute_scheduled_action,
            [
                ExecuteScheduledAction(scheduled_action_id=f"bench-{n}")
                for n in range(CELERY_MANY_JOBS)
            ],
            dedup_ids=[f"many-{round_id}-{n}" for n in range(CELERY_MANY_JOBS)],
            settings=settings,
        )
        return len(receipts)

    samples: dict[str, list[float]] = {"raw1": [], "one": [], "raw2": [], "many": []}

    def measure(name: str, jobs: Callable[[int, float], int]) -> Callable[[], None]:
        def run() -> None:
            samples[name].append(rate(jobs))
            # Nothing consumes: keep Redis small between rounds (outside the timing).
            queue.delete(prefix + "celery")

        return run

    try:
        say("warming up the Celery path (connection, queue declaration)")
        raw_loop(50)(0, time.perf_counter() + ROUND_SECONDS)
        enqueue_loop(0, time.perf_counter() + ROUND_SECONDS)
        queue.delete(prefix + "celery")
        say(f"a) enqueue vs apply_async: {rounds} rounds of {CELERY_ONE_JOBS}")
        alternate(
            rounds,
            {
                "raw1": measure("raw1", raw_loop(CELERY_ONE_JOBS)),
                "one": measure("one", enqueue_loop),
            },
        )
        say(f"b) enqueue_many vs apply_async: {rounds} rounds of {CELERY_MANY_JOBS}")
        alternate(
            rounds,
            {
                "raw2": measure("raw2", raw_loop(CELERY_MANY_JOBS)),
                "many": measure("many", enqueue_many_call),
            },
        )
    finally:
        queue.close()

    one, raw1 = statistics.median(samples["one"]), statistics.median(samples["raw1"])
    many, raw2 = statistics.median(samples["many"]), statistics.median(samples["raw2"])
    return [
        Row(
            "a) enqueue, Celery/Redis",
            f"{one:,.0f} jobs/s",
            f"{raw1:,.0f} jobs/s raw apply_async",
            one / raw1,
            ">= 0.90x raw",
            one / raw1 >= 0.90,
        ),
        Row(
            f"b) enqueue_many({CELERY_MANY_JOBS:,}), Celery/Redis",
            f"{many:,.0f} jobs/s",
            f"{raw2:,.0f} jobs/s raw apply_async",
            many / raw2,
            ">= 2x raw",
            many / raw2 >= 2.0,
        ),
    ]


# --- c): Inngest event API --------------------------------------------------------------


def inngest_row(rounds: int, sink: EventSink) -> tuple[Row, dict[str, int]]:
    import httpx

    from bridge import enqueue_many
    from config import load_settings
    from tasks.scheduled_actions import ExecuteScheduledAction, execute_scheduled_action

    settings = load_settings(job_provider="inngest")
    event = execute_scheduled_action.event
    client = httpx.Client(timeout=30)

    def via_enqueue_many(round_id: int, deadline: float) -> int:
        receipts = enqueue_many(
            execute_scheduled_action,
            [ExecuteScheduledAction(scheduled_action_id=f"bench-{n}") for n in range(INNGEST_JOBS)],
            dedup_ids=[f"inngest-{round_id}-{n}" for n in range(INNGEST_JOBS)],
            settings=settings,
        )
        return len(receipts)

    def raw_posts(round_id: int, deadline: float) -> int:
        sent = 0
        while sent < INNGEST_JOBS and time.perf_counter() < deadline:
            count = min(INNGEST_EVENTS_PER_REQUEST, INNGEST_JOBS - sent)
            now_ms = int(time.time() * 1000)
            events = [
                {
                    "name": event,
                    "data": {"scheduledActionId": f"bench-{n}"},
                    "id": f"raw-{round_id}-{n}",
                    "ts": now_ms,
                }
                for n in range(sent, sent + count)
            ]
            answer = client.post(f"{sink.url}/e/{EVENT_KEY}", json=events)
            answer.raise_for_status()
            sent += len(answer.json()["ids"])
        return sent

    samples: dict[str, list[float]] = {"raw": [], "ours": []}
    try:
        say("warming up the Inngest path")
        via_enqueue_many(0, time.perf_counter() + ROUND_SECONDS)
        raw_posts(0, time.perf_counter() + ROUND_SECONDS)
        before = sink.stats()
        say(f"c) Inngest enqueue_many vs raw POSTs: {rounds} rounds of {INNGEST_JOBS:,}")
        alternate(
            rounds,
            {
                "raw": lambda: samples["raw"].append(rate(raw_posts)),
                "ours": lambda: samples["ours"].append(rate(via_enqueue_many)),
            },
        )
        after = sink.stats()
    finally:
        client.close()

    ours, raw = statistics.median(samples["ours"]), statistics.median(samples["raw"])
    seen = {
        "requests": after["requests"] - before["requests"],
        "events": after["events"] - before["events"],
        "max_events_per_request": after["max_events_per_request"],
    }
    row = Row(
        f"c) enqueue_many({INNGEST_JOBS:,}), Inngest",
        f"{ours:,.0f} jobs/s",
        f"{raw:,.0f} jobs/s raw POSTs",
        ours / raw,
        ">= 20,000 jobs/s",
        ours >= 20_000,
    )
    return row, seen


# --- d): receiving a delivery -----------------------------------------------------------


def qstash_signature(body: bytes, url: str) -> str:
    """The JWT QStash puts in Upstash-Signature (HS256 over the public URL and body hash)."""
    import jwt

    now = int(time.time())
    claims = {
        "iss": "Upstash",
        "sub": url,
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("="),
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": f"jwt_{uuid.uuid4().hex}",
    }
    return jwt.encode(claims, QSTASH_CURRENT_KEY, algorithm="HS256")


def inngest_call(event: str, data: dict[str, Any], run_id: str) -> tuple[bytes, str]:
    """A first-attempt call of a one-step function, as the Inngest executor sends it."""
    from inngest._internal.net import sign_request

    now_ms = int(time.time() * 1000)
    full_event = {"name": event, "data": data, "id": run_id, "ts": now_ms}
    body = json.dumps(
        {
            "event": full_event,
            "events": [full_event],
            "steps": {},
            "ctx": {
                "run_id": run_id,
                "attempt": 0,
                "max_attempts": 4,
                "disable_immediate_execution": False,
                "stack": {"stack": []},
            },
            "use_api": False,
        }
    ).encode()
    return body, str(sign_request(body, SIGNING_KEY))


@dataclass
class Deliverer:
    """One delivery of the job, each way; every method returns its seconds.

    Signatures are made before the clock starts: the provider's cost, not ours.
    """

    client: Any  # httpx.Client on the web server
    spec: Any  # the JobSpec of execute_scheduled_action
    numbers: Iterator[int]

    def direct(self) -> float:
        from bridge.outcome import Delivery, Outcome

        number = next(self.numbers)
        payload = self.spec.payload(scheduled_action_id=f"missing-{number}")
        delivery = Delivery("bench", f"direct-{number}", 0)
        started = time.perf_counter()
        result = self.spec.body(payload, delivery)
        elapsed = time.perf_counter() - started
        if result.outcome is not Outcome.SKIPPED:
            raise RuntimeError(f"the body answered {result}")
        return elapsed

    def qstash(self) -> float:
        body = json.dumps({"scheduledActionId": f"missing-{next(self.numbers)}"}).encode()
        headers = {
            "Content-Type": "application/json",
            # A new message each time: one already seen is answered without running.
            "Upstash-Message-Id": f"msg_bench_{uuid.uuid4().hex}",
            "Upstash-Retried": "0",
            "Upstash-Signature": qstash_signature(body, WEBHOOK_URL + self.spec.route),
        }
        started = time.perf_counter()
        answer = self.client.post(self.spec.route, content=body, headers=headers)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200 or answer.json().get("outcome") != "skipped":
            raise RuntimeError(f"the QStash route answered {answer.status_code}: {answer.text}")
        return elapsed

    def inngest(self) -> float:
        number = next(self.numbers)
        data = {"scheduledActionId": f"missing-{number}"}
        body, signature = inngest_call(self.spec.event, data, f"01BENCH{number:019d}")
        headers = {"Content-Type": "application/json", "X-Inngest-Signature": signature}
        params = {"fnId": f"{INNGEST_APP_ID}-{self.spec.fn_id}", "stepId": "step"}
        started = time.perf_counter()
        answer = self.client.post("/api/inngest", params=params, content=body, headers=headers)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200 or answer.json().get("outcome") != "skipped":
            raise RuntimeError(f"/api/inngest answered {answer.status_code}: {answer.text}")
        return elapsed

    def floor(self) -> float:
        """The web stack alone: the job route refusing an unsigned call (401, no database)."""
        headers = {"Content-Type": "application/json"}
        started = time.perf_counter()
        answer = self.client.post(self.spec.route, content=b"{}", headers=headers)
        elapsed = time.perf_counter() - started
        if answer.status_code != 401:
            raise RuntimeError(f"an unsigned call was answered {answer.status_code}")
        return elapsed


def sampled(one: Callable[[], float], into: list[float]) -> Callable[[], None]:
    """A round of DELIVERIES sequential calls of `one`, within ROUND_SECONDS."""

    def run() -> None:
        deadline = time.perf_counter() + ROUND_SECONDS
        for _ in range(DELIVERIES):
            if time.perf_counter() > deadline:
                return
            into.append(one())

    return run


def delivery_rows(rounds: int, log_path: Path) -> tuple[list[Row], float]:
    import httpx

    from tasks.scheduled_actions import execute_scheduled_action

    samples: dict[str, list[float]] = {"direct": [], "qstash": [], "inngest": [], "floor": []}
    with web_server(log_path) as url, httpx.Client(base_url=url, timeout=10) as client:
        deliver = Deliverer(client, execute_scheduled_action, itertools.count())
        sides = {
            "direct": sampled(deliver.direct, samples["direct"]),
            "qstash": sampled(deliver.qstash, samples["qstash"]),
            "inngest": sampled(deliver.inngest, samples["inngest"]),
            "floor": sampled(deliver.floor, samples["floor"]),
        }
        say("warming up the web server and the database")
        alternate(1, sides)
        for values in samples.values():
            values.clear()
        say(f"d) deliveries: {rounds} rounds of {DELIVERIES} per side, sequential")
        alternate(rounds, sides)

    base, floor = p50_ms(samples["direct"]), p50_ms(samples["floor"])
    rows = []
    for name, label in (("qstash", "d) QStash route"), ("inngest", "d) Inngest /api/inngest")):
        route = p50_ms(samples[name])
        p90 = statistics.quantiles(samples[name], n=10)[-1] * 1000
        # The receiver's own work (verify + validate + dispatch): what the route costs
        # beyond the job body and beyond the web server answering any request at all.
        own = route - base - floor
        rows.append(
            Row(
                label,
                f"p50 {route:.2f} ms end to end (p90 {p90:.2f}); receiver {own:+.2f} ms",
                f"p50 {base:.2f} ms body + {floor:.2f} ms HTTP floor",
                route / (base + floor),
                "receiver < 1 ms p50",
                own < 1.0,
            )
        )
    return rows, p50_ms(samples["floor"])


# --- Report --------------------------------------------------------------------------


def print_table(
    rows: list[Row],
    notes: list[str],
    title: str = "jobbridge enqueue and delivery benchmark",
    caption_justify: str = "center",
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=title,
        caption=Text("\n".join(notes)),  # plain text: "uvicorn[standard]" is not markup
        caption_justify=caption_justify,  # type: ignore[arg-type]
    )
    for column in ("row", "measured", "baseline (same run)", "ratio", "goal", "result"):
        table.add_column(column, justify="right" if column == "ratio" else "left")
    for row in rows:
        table.add_row(
            row.name,
            row.measured,
            row.baseline,
            f"{row.ratio:.2f}x",
            row.goal,
            "[green]PASS[/]" if row.passed else "[red]MISS[/]",
        )
    Console(width=max(150, shutil.get_terminal_size().columns)).print(table)


def clean_up(sink: EventSink, prefix: str, database_url: str | None, data_dir: Path) -> None:
    """Undo everything the run made; one failed step does not stop the others."""

    def drop() -> None:
        if database_url is None:
            return
        if "bridge.store.db" in sys.modules:  # close our pooled connections first
            from bridge.store.db import engine_for

            engine_for(database_url).dispose()
        drop_database(database_url)

    run_cleanup(
        [
            ("the event sink", sink.stop),
            (f"Redis keys under {prefix}", lambda: delete_prefix(prefix)),
            ("the database", drop),
            (str(data_dir), lambda: shutil.rmtree(data_dir, ignore_errors=True)),
        ]
    )


def run_cleanup(steps: list[tuple[str, Callable[[], object]]]) -> None:
    """Run every removal step; one that fails is reported and does not stop the others."""
    for what, step in steps:
        try:
            step()
        except Exception as error:
            say(f"could not remove {what}: {type(error).__name__}: {error}")
        else:
            say(f"removed {what}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per row")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row misses")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 50))

    data_dir = Path(tempfile.mkdtemp(prefix="jobbridge-bench-"))
    prefix = f"jbbench-{uuid.uuid4().hex[:8]}:"
    sink = EventSink.start()
    database_url: str | None = None
    try:
        database_url = create_database()
        run = Run(prefix, database_url, data_dir, sink)
        configure(run)
        from tasks.schema import upgrade

        upgrade(database_url)
        say(f"Redis prefix {prefix}, database {database_url.rsplit('/', 1)[1]}")

        rows = celery_rows(rounds, prefix)
        inngest, seen = inngest_row(rounds, sink)
        rows.append(inngest)
        deliveries, floor_ms = delivery_rows(rounds, data_dir / "uvicorn.log")
        rows += deliveries
    finally:
        clean_up(sink, prefix, database_url, data_dir)

    notes = [
        f"Medians of {rounds} alternating rounds; Redis {REDIS_URL}, no worker consuming.",
        f"c) sink saw {seen['requests']} requests, {seen['events']:,} events, at most "
        f"{seen['max_events_per_request']:,} per request.",
        "d) uvicorn[standard] (httptools, uvloop), 1 worker, 127.0.0.1, sequential keep-alive "
        "POSTs timed at the client; body = execute on a missing id (1 PostgreSQL lookup); the "
        "QStash route also checks and records Upstash-Message-Id (Redis GET and SET).",
        f"d) HTTP floor = the same server answering an unsigned POST 401: p50 {floor_ms:.2f} ms; "
        "receiver = end to end - body - floor (verify + validate + dispatch).",
    ]
    print_table(rows, notes)
    return 1 if args.strict and not all(row.passed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
