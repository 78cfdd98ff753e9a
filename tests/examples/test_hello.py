"""examples.hello, a second app on the shim, runs alone: it imports nothing from `tasks`
(the inbox app), and its job and cron run on a real Celery worker, through the QStash,
Inngest and direct HTTP receivers, on the cron route and from the `jobbridge` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grimp
import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from inngest._internal.net import sign_request

from bridge import enqueue
from bridge.apps import load_app
from bridge.web import create_app
from config import Provider, Settings, load_settings
from examples import hello
from examples.hello import Greet, send_greeting
from tests.support import env
from tests.support.commands import jobbridge
from tests.support.fake_inngest import FakeInngest
from tests.support.fake_qstash import mint_signature
from tests.support.services import (
    ROOT,
    TEST_REDIS_URL,
    Process,
    delete_redis_prefix,
    free_port,
    wait_until_ready,
)
from tests.support.wait import wait_for

GREET = "/api/hello/greet"
TICK = "/api/hello/tick"
ADA = b'{"name": "Ada"}'
# The inbox app's commands, which must not join `jobbridge` when the app is hello.
INBOX_COMMANDS = {"accounts", "actions", "bulk", "db", "demo", "clean", "digest", "migrate"}

Client = Callable[[Settings], TestClient]


def greeting(outbox: Path, name: str = "Ada") -> Path:
    return outbox / f"{name}.txt"


def inbox_modules(output: str) -> list[str]:
    return [name for name in json.loads(output) if name == "tasks" or name.startswith("tasks.")]


def python(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter at the repository root, as `celery -A` runs there."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the example's job writes in this process (it reads HELLO_OUTBOX per run)."""
    folder = tmp_path / "outbox"
    monkeypatch.setenv("HELLO_OUTBOX", str(folder))
    return folder


@pytest.fixture
def client() -> Iterator[Client]:
    """The shim's web app serving examples.hello, for the given settings."""
    opened: list[TestClient] = []

    def make(settings: Settings) -> TestClient:
        test_client = TestClient(create_app(settings, load_app("examples.hello")))
        opened.append(test_client.__enter__())
        return test_client

    yield make
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own: no other worker takes its messages."""
    prefix = f"jbhello-{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_redis_prefix(prefix)


# Standing alone ---------------------------------------------------------------------------


def test_the_example_imports_nothing_from_the_inbox_app_even_indirectly() -> None:
    graph = grimp.build_graph("examples", "bridge", "config", "tasks")

    chain = graph.find_shortest_chain(importer="examples", imported="tasks", as_packages=True)

    assert chain is None


def test_serving_the_example_loads_no_module_of_the_inbox_app() -> None:
    done = python(
        "import json, sys\n"
        "from bridge.apps import load_app\n"
        "from bridge.web import create_app\n"
        "from config import load_settings\n"
        "hello = load_app('examples.hello')\n"
        "create_app(load_settings(), hello)\n"
        "import examples.hello\n"
        "examples.hello.app.finalize(auto=True)\n"
        "assert 'hello/greeting.send' in examples.hello.app.tasks\n"
        "print(json.dumps(sorted(sys.modules)))\n",
        **env.INNGEST_ENV,
        **env.QSTASH_ENV,
    )

    assert done.returncode == 0, done.stderr
    assert inbox_modules(done.stdout) == []


def test_importing_the_example_reads_no_environment() -> None:
    done = python(
        "import examples.hello\n"
        "from config.settings import get_settings\n"
        "print(get_settings.cache_info().currsize)\n",
        JOB_PROVIDER="nonsense",
        INNGEST_SIGNING_KEY="not-hex",
        JOBBRIDGE_APP="not a module name",
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"  # Settings were never read


def test_beside_the_inbox_app_the_examples_celery_app_holds_only_its_own_tasks() -> None:
    done = python(
        "import json, tasks, examples.hello\nprint(json.dumps(sorted(examples.hello.app.tasks)))\n"
    )

    assert done.returncode == 0, done.stderr
    ours = {name for name in json.loads(done.stdout) if not name.startswith("celery.")}
    assert ours == {"hello/greeting.send", "cron.hello.tick", "cron.celery.release-deferred"}


# Celery -----------------------------------------------------------------------------------


def test_a_celery_worker_of_the_example_runs_an_enqueued_greeting(
    tmp_path: Path, log_dir: Path, redis_prefix: str
) -> None:
    outbox = tmp_path / "outbox"
    command = [
        *[sys.executable, "-m", "celery", "-A", "examples.hello", "worker"],
        *["--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO"],
        *["--hostname", f"hello-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"],
    ]
    variables = {"REDIS_KEY_PREFIX": redis_prefix, "HELLO_OUTBOX": str(outbox)}
    worker = wait_until_ready(
        Process(f"hello-worker-{redis_prefix[8:-1]}", command, {**os.environ, **variables}, log_dir)
    )
    try:
        settings = load_settings(REDIS_KEY_PREFIX=redis_prefix, JOB_PROVIDER="celery")

        receipt = enqueue(send_greeting, Greet(name="Ada"), settings=settings)

        assert receipt.provider is Provider.CELERY
        wait_for(lambda: greeting(outbox).exists(), timeout=30, what="the worker to greet Ada")
        assert greeting(outbox).read_text() == "Hello, Ada!\n"
    finally:
        worker.stop()


# QStash, direct HTTP and the cron route ---------------------------------------------------


def qstash_headers(body: bytes, signature: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Upstash-Signature": signature or mint_signature(body, env.WEBHOOK_URL + GREET),
        "Upstash-Message-Id": f"msg_{uuid.uuid4().hex}",
        "Upstash-Retried": "0",
    }


def test_a_signed_qstash_delivery_greets(client: Client, configure: Any, outbox: Path) -> None:
    web = client(configure(**env.QSTASH_ENV))

    response = web.post(GREET, content=ADA, headers=qstash_headers(ADA))

    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "done", "detail": "greeted Ada (qstash)"}
    assert greeting(outbox).read_text() == "Hello, Ada!\n"


def test_a_qstash_delivery_signed_with_another_key_is_refused_and_greets_nobody(
    client: Client, configure: Any, outbox: Path
) -> None:
    web = client(configure(**env.QSTASH_ENV))
    forged = mint_signature(ADA, env.WEBHOOK_URL + GREET, key="sig_" + "0" * 32)

    response = web.post(GREET, content=ADA, headers=qstash_headers(ADA, forged))

    assert response.status_code == 401
    assert not outbox.exists()


def direct(web: TestClient, body: bytes) -> Any:
    headers = {"Content-Type": "application/json", "x-api-key": env.INTERNAL_API_KEY}
    return web.post(GREET, content=body, headers=headers)


def test_a_second_greeting_for_the_same_name_is_skipped(
    client: Client, configure: Any, outbox: Path
) -> None:
    web = client(configure())
    assert direct(web, ADA).json()["outcome"] == "done"

    again = direct(web, ADA)

    assert again.status_code == 200
    assert again.json() == {"outcome": "skipped", "detail": "Ada was greeted before"}
    assert greeting(outbox).read_text() == "Hello, Ada!\n"
    assert sorted(path.name for path in outbox.iterdir()) == ["Ada.txt"]  # no draft left


def test_a_name_that_is_a_path_is_refused_for_good_and_writes_nothing(
    client: Client, configure: Any, outbox: Path, tmp_path: Path
) -> None:
    web = client(configure())

    response = direct(web, json.dumps({"name": "../escaped"}).encode())

    assert response.status_code == 489  # failed: QStash and direct callers do not retry
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert list(tmp_path.rglob("*.txt")) == []


def test_the_cron_route_with_the_cron_secret_runs_the_tick(
    client: Client, configure: Any, outbox: Path
) -> None:
    web = client(configure())
    direct(web, ADA)

    response = web.post(TICK, headers={"Authorization": f"Bearer {env.CRON_SECRET}"})

    assert response.status_code == 200, response.text
    assert response.json() == {"greetings": 1}


def test_the_cron_route_without_the_cron_secret_is_refused(
    client: Client, configure: Any, outbox: Path
) -> None:
    web = client(configure())

    response = web.post(TICK, headers={"Authorization": "Bearer not-the-secret"})

    assert response.status_code == 401


def test_a_qstash_delivery_greets_on_the_embedded_default_without_redis(
    client: Client, configure: Any, outbox: Path, tmp_path: Path
) -> None:
    settings = configure(
        **env.QSTASH_ENV, REDIS_URL=None, DATABASE_URL=None, DATA_DIR=str(tmp_path / "data")
    )
    hello.prepare_dev(settings)  # the shim's tables: the ledger and the replay guard
    web = client(settings)

    response = web.post(GREET, content=ADA, headers=qstash_headers(ADA))

    assert response.status_code == 200, response.text
    assert greeting(outbox).read_text() == "Hello, Ada!\n"


# Inngest ----------------------------------------------------------------------------------


def inngest_call(web: TestClient, fn_id: str, event: dict[str, Any]) -> Any:
    """One call as Inngest's executor makes it: the run's request, signed with the key."""
    body = FakeInngest.request_body(event, f"01RUN{uuid.uuid4().hex[:20].upper()}", 0, {}, [])
    raw = json.dumps(body).encode()
    return web.post(
        "/api/inngest",
        params={"fnId": f"hello-{fn_id}", "stepId": "step"},
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Inngest-Signature": str(sign_request(raw, env.INNGEST_SIGNING_KEY)),
        },
    )


@pytest.fixture
def inngest_settings(configure: Any) -> Settings:
    """Inngest in cloud mode, for an app id of the example's own."""
    settings: Settings = configure(**env.INNGEST_ENV, INNGEST_APP_ID="hello")
    return settings


def test_a_signed_inngest_call_runs_the_greeting_function(
    client: Client, inngest_settings: Settings, outbox: Path
) -> None:
    web = client(inngest_settings)
    event = {"name": "hello/greeting.send", "data": {"name": "Ada"}}

    response = inngest_call(web, "greeting-send", event)

    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "done", "detail": "greeted Ada (inngest)"}
    assert greeting(outbox).read_text() == "Hello, Ada!\n"


def test_an_unsigned_inngest_call_is_refused_and_greets_nobody(
    client: Client, inngest_settings: Settings, outbox: Path
) -> None:
    web = client(inngest_settings)
    body = FakeInngest.request_body(
        {"name": "hello/greeting.send", "data": {"name": "Ada"}}, "01RUNUNSIGNED", 0, {}, []
    )

    response = web.post(
        "/api/inngest",
        params={"fnId": "hello-greeting-send", "stepId": "step"},
        json=body,
    )

    assert response.status_code == 401
    assert not outbox.exists()


def test_inngest_runs_the_cron_function(
    client: Client, inngest_settings: Settings, outbox: Path
) -> None:
    web = client(inngest_settings)
    timer = {"name": "inngest/scheduled.timer", "data": {"cron": "* * * * *"}}

    response = inngest_call(web, "hello-tick", timer)

    assert response.status_code == 200, response.text
    assert response.json() == {"greetings": 0}


def test_a_signed_call_of_the_cron_function_with_a_jobs_event_runs_nothing(
    client: Client, inngest_settings: Settings
) -> None:
    web = client(inngest_settings)
    job_event = {"name": "hello/greeting.send", "data": {"name": "Ada"}}

    response = inngest_call(web, "hello-tick", job_event)

    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"
    assert "does not trigger" in response.text


def test_an_inngest_sync_lists_the_job_and_the_cron_under_the_apps_id(
    client: Client, inngest_settings: Settings
) -> None:
    web = client(inngest_settings)
    body = json.dumps({"url": f"{env.INNGEST_SERVE_ORIGIN}/api/inngest"}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Inngest-Signature": str(sign_request(body, env.INNGEST_SIGNING_KEY)),
        "X-Inngest-Sync-Kind": "in_band",
    }

    response = web.put("/api/inngest", content=body, headers=headers)

    assert response.status_code == 200, response.text
    config = response.json()
    assert config["app_id"] == "hello"
    functions = {function["id"] for function in config["functions"]}
    assert functions == {"hello-greeting-send", "hello-hello-tick", "hello-celery-release-deferred"}


# As the docstring says: `uvicorn bridge.web:app` ------------------------------------------


def test_uvicorn_serves_the_example_as_its_docstring_says(tmp_path: Path, log_dir: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bridge.web:app", "--port", str(port)]
    variables = {"JOBBRIDGE_APP": "examples.hello", "HELLO_OUTBOX": str(tmp_path / "outbox")}
    web = Process(f"hello-web-{port}", command, {**os.environ, **variables}, log_dir)

    def answer() -> httpx.Response | None:
        if not web.alive():
            raise AssertionError(f"uvicorn exited:\n{web.log()}")
        headers = {"Content-Type": "application/json", "x-api-key": env.INTERNAL_API_KEY}
        try:
            return httpx.post(f"http://127.0.0.1:{port}{GREET}", content=ADA, headers=headers)
        except httpx.TransportError:
            return None

    try:
        response = wait_for(answer, timeout=30, what="uvicorn to answer")
        assert response.status_code == 200, response.text
        assert greeting(tmp_path / "outbox").read_text() == "Hello, Ada!\n"
    finally:
        web.stop()


# The command line -------------------------------------------------------------------------


def command_names(help_text: str) -> set[str]:
    """The commands `--help` lists: the first word of each line of its Commands list."""
    listed = help_text.split("Commands:", 1)[1]
    return set(re.findall(r"^  ([a-z][\w-]*)(?:\s|$)", listed, flags=re.MULTILINE))


def test_the_command_line_offers_the_shims_commands_and_none_of_the_inbox_apps(
    tmp_path: Path,
) -> None:
    done = jobbridge(
        "--help",
        workdir=tmp_path,
        JOBBRIDGE_APP="examples.hello",
        PYTHONPATH=str(ROOT),  # a console script does not look in its working directory
    )

    assert done.returncode == 0, done.stdout + done.stderr
    # The app was found and loaded (else the epilog says why its commands are missing).
    assert "commands are missing" not in " ".join(done.stdout.split())
    names = command_names(done.stdout)
    assert {"config", "enqueue", "dev", "keys", "audit", "sync", "status"} <= names
    assert names.isdisjoint(INBOX_COMMANDS)


def test_the_command_line_enqueues_a_greeting_on_celery(tmp_path: Path, redis_prefix: str) -> None:
    done = jobbridge(
        *["enqueue", "greeting.send", "--data", '{"name": "Ada"}'],
        workdir=tmp_path,
        JOBBRIDGE_APP="examples.hello",
        PYTHONPATH=str(ROOT),
        JOB_PROVIDER="celery",
        REDIS_KEY_PREFIX=redis_prefix,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["provider"] == "celery"
    assert receipt["deduplicated"] is False
    broker = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        (message,) = [json.loads(raw) for raw in broker.lrange(f"{redis_prefix}celery", 0, -1)]
    finally:
        broker.close()
    assert message["headers"]["task"] == "hello/greeting.send"
    assert message["headers"]["id"] == receipt["id"]


def test_without_hello_outbox_greetings_land_under_data_dir(
    configure: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HELLO_OUTBOX", raising=False)
    configure(DATA_DIR=str(tmp_path / "data"))

    assert hello.outbox() == tmp_path / "data" / "hello"
