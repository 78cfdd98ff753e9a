"""The operator commands: `jobbridge keys`, `audit`, `sync` and `status`, run as a user
would (in-process via CliRunner) against the suite's real PostgreSQL, Redis, web server
and Celery worker; QStash and the Inngest server are played by the tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from inngest._internal.net import sign_request
from typer.testing import CliRunner, Result

from bridge.cli import app
from bridge.store.db import session_scope
from config import load_settings
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.conftest import server_env
from tests.support import env as test_env
from tests.support.inngest_sync import expected_function_ids, served_function_count
from tests.support.ops_doubles import FailingInngestApi, QStashAdmin
from tests.support.services import Process, free_port, start_web
from tests.support.wait import wait_for

Configure = Callable[..., Any]

HEX = re.compile(r"^[0-9a-f]+$")


@pytest.fixture(autouse=True)
def wide_console_without_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Rich wraps table cells at 80 columns when not on a terminal, and Settings read `.env`
    from the working directory: a wide console, in a directory without one."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)


def jobbridge(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def line_of(output: str, service: str) -> str:
    """The status table's row for `service` (its first cell), with the lines its wrapped
    cells continue on, if any."""
    found: list[str] = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if found and cells and not cells[0]:
            found.append(line)
        elif found:
            break
        elif cells and cells[0] == service:
            found.append(line)
    assert found, f"no line for {service!r} in:\n{output}"
    return "\n".join(found)


def closed_port() -> int:
    return free_port()  # bound then released: nothing listens there


# keys


def env_lines(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_keys_are_hex_of_the_right_sizes_and_accepted_by_settings() -> None:
    result = jobbridge("keys")

    assert result.exit_code == 0, result.output
    values = env_lines(result.stdout)
    assert set(values) == {"INNGEST_EVENT_KEY", "INNGEST_SIGNING_KEY"}
    event_key, signing_key = values["INNGEST_EVENT_KEY"], values["INNGEST_SIGNING_KEY"]
    # `inngest start` and the SDK hash the signing key with bytes.fromhex.
    assert HEX.match(event_key) and len(bytes.fromhex(event_key)) == 16
    assert HEX.match(signing_key) and len(bytes.fromhex(signing_key)) == 32
    settings = load_settings(
        inngest_signing_key=signing_key,
        inngest_event_key=event_key,
        inngest_serve_origin=test_env.INNGEST_SERVE_ORIGIN,
    )
    assert settings.inngest_publishes and settings.inngest_serves


def test_keys_are_fresh_each_time() -> None:
    first, second = (env_lines(jobbridge("keys").stdout) for _ in range(2))

    assert first["INNGEST_SIGNING_KEY"] != second["INNGEST_SIGNING_KEY"]
    assert first["INNGEST_EVENT_KEY"] != second["INNGEST_EVENT_KEY"]


def test_keys_env_file_appends_without_overwriting(tmp_path: Path) -> None:
    existing = "cd" * 32
    env_file = tmp_path / "prod.env"
    env_file.write_text(f"REDIS_URL=redis://redis:6379/0\nINNGEST_SIGNING_KEY={existing}\n")

    result = jobbridge("keys", "--env-file", str(env_file))

    assert result.exit_code == 0, result.output
    lines = env_file.read_text().splitlines()
    assert lines[:2] == ["REDIS_URL=redis://redis:6379/0", f"INNGEST_SIGNING_KEY={existing}"]
    assert len(lines) == 3 and re.fullmatch(r"INNGEST_EVENT_KEY=[0-9a-f]{32}", lines[2])
    assert "kept INNGEST_SIGNING_KEY" in result.output
    assert f"added INNGEST_EVENT_KEY to {env_file}" in result.output
    assert lines[2] in result.output.splitlines()  # the new line, as it was written
    assert existing not in result.output  # a kept secret is not echoed


def test_keys_env_file_fills_variables_present_but_empty(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# Inngest\nINNGEST_EVENT_KEY=\nINNGEST_SIGNING_KEY=\n")

    assert jobbridge("keys", "--env-file", str(env_file)).exit_code == 0

    values = env_lines(env_file.read_text())
    assert len(env_file.read_text().splitlines()) == 3  # filled in place, nothing appended
    load_settings(
        _env_file=None,
        inngest_signing_key=values["INNGEST_SIGNING_KEY"],
        inngest_event_key=values["INNGEST_EVENT_KEY"],
        inngest_serve_origin=test_env.INNGEST_SERVE_ORIGIN,
    )


def test_keys_env_file_keeps_a_value_set_after_an_empty_one(tmp_path: Path) -> None:
    # dotenv's last assignment wins: this file sets the key, however empty the first line.
    existing = "ef" * 32
    env_file = tmp_path / ".env"
    original = f"INNGEST_SIGNING_KEY=\nINNGEST_EVENT_KEY=abc\nINNGEST_SIGNING_KEY={existing}\n"
    env_file.write_text(original)

    result = jobbridge("keys", "--env-file", str(env_file))

    assert result.exit_code == 0, result.output
    assert env_file.read_text() == original
    assert "kept INNGEST_SIGNING_KEY" in result.output
    assert "kept INNGEST_EVENT_KEY" in result.output


def test_keys_env_file_is_created_private(tmp_path: Path) -> None:
    env_file = tmp_path / "new.env"

    assert jobbridge("keys", "--env-file", str(env_file)).exit_code == 0

    assert set(env_lines(env_file.read_text())) == {"INNGEST_EVENT_KEY", "INNGEST_SIGNING_KEY"}
    assert env_file.stat().st_mode & 0o077 == 0


# audit


def add_action(status: ActionStatus, due_in: timedelta, **fields: Any) -> None:
    with session_scope() as session:
        session.add(
            ScheduledAction(
                email_account_id="acct-audit",
                action_type=ActionType.ARCHIVE,
                message_id=f"m-{time.monotonic_ns()}",
                thread_id="t",
                scheduled_for=utcnow() + due_in,
                status=status,
                **fields,
            )
        )


def audit_json(*extra: str) -> dict[str, Any]:
    result = jobbridge("audit", "--json", *extra)
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_audit_json_on_an_empty_database() -> None:
    assert audit_json() == {
        "scheduledActions": {
            "byStatus": {
                "PENDING": 0,
                "EXECUTING": 0,
                "COMPLETED": 0,
                "FAILED": 0,
                "CANCELLED": 0,
            },
            "pending": {"count": 0, "oldestScheduledFor": None},
            "dueUnexecuted": 0,
            "stuckExecuting": 0,
            "pendingByProvider": {},
        },
        "qstash": None,
        "inngest": None,
    }


def test_audit_json_counts_a_busy_database() -> None:
    hour = timedelta(hours=1)
    oldest = utcnow() - 3 * hour
    with session_scope() as session:
        session.add(
            ScheduledAction(
                email_account_id="acct-audit",
                action_type=ActionType.LABEL,
                message_id="oldest",
                thread_id="t",
                scheduled_for=oldest,
                scheduled_provider="qstash",
            )
        )
    add_action(ActionStatus.PENDING, -hour, scheduled_provider="qstash")  # due
    add_action(ActionStatus.PENDING, 2 * hour, scheduled_provider="inngest")  # not yet due
    add_action(ActionStatus.PENDING, 3 * hour, scheduled_provider="inngest")
    add_action(ActionStatus.PENDING, 4 * hour)  # never published
    add_action(ActionStatus.EXECUTING, -hour, lease_expires_at=utcnow() - timedelta(minutes=1))
    add_action(ActionStatus.EXECUTING, -hour, lease_expires_at=utcnow() + timedelta(minutes=14))
    for _ in range(3):
        add_action(ActionStatus.COMPLETED, -hour)
    add_action(ActionStatus.FAILED, -hour)
    add_action(ActionStatus.CANCELLED, hour)
    add_action(ActionStatus.CANCELLED, -hour)

    report = audit_json()["scheduledActions"]

    assert report["byStatus"] == {
        "PENDING": 5,
        "EXECUTING": 2,
        "COMPLETED": 3,
        "FAILED": 1,
        "CANCELLED": 2,
    }
    assert report["pending"]["count"] == 5
    assert datetime.fromisoformat(report["pending"]["oldestScheduledFor"]) == oldest
    assert report["dueUnexecuted"] == 2
    assert report["stuckExecuting"] == 1
    assert report["pendingByProvider"] == {"inngest": 2, "qstash": 2, "unpublished": 1}


@pytest.fixture
def qstash_configured(router: Any, configure: Configure) -> Callable[..., QStashAdmin]:
    def play(**options: Any) -> QStashAdmin:
        configure(**test_env.QSTASH_ENV)
        return QStashAdmin(router, **options)

    return play


QUEUES = [
    {"name": "scheduled-actions", "lag": 42, "paused": False, "parallelism": 5},
    {"name": "digests", "lag": 7, "paused": True},
]


def test_audit_json_with_qstash_gives_queue_lag_and_the_whole_dlq(
    qstash_configured: Callable[..., QStashAdmin],
) -> None:
    played = qstash_configured(queues=QUEUES, dead_letters=230)

    report = audit_json()["qstash"]

    assert report == {
        "queues": [
            {"name": "scheduled-actions", "lag": 42, "paused": False, "parallelism": 5},
            {"name": "digests", "lag": 7, "paused": True, "parallelism": 1},
        ],
        "totalLag": 49,
        "dlqSize": 230,
        "dlqSizeIsLowerBound": False,
        "error": None,
    }
    assert played.dlq_pages_served == 3  # paged through, 100 at a time


def test_audit_with_qstash_shows_queue_lag_and_dlq_size(
    qstash_configured: Callable[..., QStashAdmin],
) -> None:
    qstash_configured(queues=QUEUES, dead_letters=3)

    result = jobbridge("audit")

    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.output.splitlines()
        if len(cells := [cell.strip() for cell in line.split("│")[1:-1]]) == 4
    }
    assert rows["scheduled-actions"] == ["42", "no", "5"]
    assert rows["digests"] == ["7", "yes", "1"]
    assert "total lag 49" in result.output
    assert "qstash DLQ: 3 messages" in result.output


def test_audit_exits_1_naming_qstash_when_its_api_fails(
    qstash_configured: Callable[..., QStashAdmin],
) -> None:
    qstash_configured(failing=True)

    result = jobbridge("audit", "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert "500" in report["qstash"]["error"]
    assert report["scheduledActions"]["pending"]["count"] == 0


def test_audit_of_an_unreachable_qstash_says_what_to_check(
    qstash_configured: Callable[..., QStashAdmin],
) -> None:
    qstash_configured(failing=True)

    result = jobbridge("audit")

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "fix: check QSTASH_URL and QSTASH_TOKEN, and that QStash is up"
    )


def test_audit_exits_1_naming_the_database_when_it_is_down(configure: Configure) -> None:
    configure(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port()}/jobbridge")

    result = jobbridge("audit", "--json")

    assert result.exit_code == 1
    assert "database: cannot audit scheduled actions" in result.output
    assert "refused" in result.output


# sync


def as_the_app(configure: Configure) -> None:
    """The app's own signing key: in cloud mode the app registers only on a signed PUT."""
    configure(
        INNGEST_SIGNING_KEY=test_env.INNGEST_SIGNING_KEY,
        INNGEST_SERVE_ORIGIN=test_env.INNGEST_SERVE_ORIGIN,
    )


def test_sync_registers_the_app_with_inngest(
    web: str, inngest_api: Any, configure: Configure
) -> None:
    as_the_app(configure)
    before = len(inngest_api.registrations)

    result = jobbridge("sync", "--url", web)

    assert result.exit_code == 0, result.output
    assert f"synced {web}/api/inngest" in result.output
    assert len(inngest_api.registrations) == before + 1
    functions = inngest_api.registrations[-1]["body"]["functions"]
    assert {function["id"] for function in functions} == expected_function_ids()


def test_sync_with_the_apps_signing_key_prints_the_function_count(
    web: str, inngest_api: Any, configure: Configure
) -> None:
    # Inngest's register answer has no count; the app's signed inspection does.
    as_the_app(configure)

    result = jobbridge("sync", "--url", web)

    assert result.exit_code == 0, result.output
    assert f"{served_function_count()} functions registered" in result.output


def test_sync_defaults_to_internal_api_url(
    web: str, inngest_api: Any, configure: Configure
) -> None:
    as_the_app(configure)
    configure(INTERNAL_API_URL=web)
    before = len(inngest_api.registrations)

    assert jobbridge("sync").exit_code == 0
    assert len(inngest_api.registrations) == before + 1


def test_sync_without_the_signing_key_is_refused_and_registers_nothing(
    web: str, inngest_api: Any
) -> None:
    before = len(inngest_api.registrations)

    result = jobbridge("sync", "--url", web)

    assert result.exit_code == 1
    assert "INNGEST_SIGNING_KEY" in result.output
    assert len(inngest_api.registrations) == before


@pytest.fixture(scope="module")
def web_with_failing_inngest(log_dir: Path) -> Iterator[tuple[str, FailingInngestApi]]:
    """A second web server whose Inngest API refuses every registration."""
    api = FailingInngestApi()
    process: Process
    process, url = start_web(server_env(api.url), log_dir, name="web-failing-sync")
    yield url, api
    process.stop()
    api.stop()


def test_sync_fails_loudly_when_inngest_refuses_the_registration(
    web_with_failing_inngest: tuple[str, FailingInngestApi], configure: Configure
) -> None:
    as_the_app(configure)
    url, api = web_with_failing_inngest
    # The trap the command exists for: the SDK answers the PUT with 200 regardless.
    signed = {"X-Inngest-Signature": str(sign_request(b"", test_env.INNGEST_SIGNING_KEY))}
    raw = httpx.put(url + "/api/inngest", headers=signed, timeout=30)
    assert raw.status_code == 200 and raw.json() == {"error": FailingInngestApi.ERROR}
    calls = api.calls

    result = jobbridge("sync", "--url", url)

    assert result.exit_code == 1
    assert api.calls == calls + 1
    assert "sync failed" in result.output
    assert FailingInngestApi.ERROR in result.output


def test_sync_fails_when_nothing_answers() -> None:
    result = jobbridge("sync", "--url", f"http://127.0.0.1:{closed_port()}")

    assert result.exit_code == 1
    assert "could not reach" in result.output


def test_sync_refuses_a_url_that_is_not_http_naming_the_option() -> None:
    result = jobbridge("sync", "--url", "nonsense")

    assert result.exit_code == 2
    assert "Invalid value for --url" in result.output and "http://" in result.output


@pytest.fixture
def json_anything() -> Iterator[str]:
    """A server that answers every request 200 {}: not an app, whatever its URL says."""

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sync_fails_against_a_server_that_is_not_the_app(json_anything: str) -> None:
    result = jobbridge("sync", "--url", json_anything)

    assert result.exit_code == 1
    assert "not as an Inngest SDK endpoint" in result.output


# status

SERVICES = ("database", "redis", "inngest", "qstash", "celery workers")


@pytest.fixture
def providers_up(router: Any, configure: Configure) -> QStashAdmin:
    """Inngest (cloud mode, its /health played) and QStash (its queue API played)."""
    configure(**test_env.INNGEST_ENV, **test_env.QSTASH_ENV, JOB_FAILOVER="true")
    router.get(f"{test_env.INNGEST_API}/health").mock(
        return_value=httpx.Response(200, json={"status": 200, "message": "OK"})
    )
    return QStashAdmin(router, queues=QUEUES)


def status() -> Result:
    started = time.monotonic()
    result = jobbridge("status", "--timeout", "1")
    assert time.monotonic() - started < 10, "status must stay bounded in time"
    return result


def test_status_on_a_healthy_setup(providers_up: QStashAdmin, worker: Process) -> None:
    add_action(ActionStatus.PENDING, -timedelta(minutes=5), scheduled_provider="qstash")

    result = status()

    assert result.exit_code == 0, result.output
    assert "provider chain: inngest -> qstash -> celery (failover on" in result.output
    for service in SERVICES:
        assert "│ up " in line_of(result.output, service), service
    assert re.search(r"\d+\.\d ms", line_of(result.output, "database"))
    assert "1 answering" in line_of(result.output, "celery workers")
    assert "pending scheduled actions: 1 (1 due" in result.output
    assert "qstash queue lag: 49 across 2 queues (paused: digests)" in result.output


def test_status_without_inngest_qstash_or_workers_is_still_healthy() -> None:
    # Nothing optional is configured, and a missing worker is a warning, not a failure:
    # only the database and the broker are required.
    result = status()

    assert result.exit_code == 0, result.output
    assert "not configured" in line_of(result.output, "inngest")
    assert "not configured" in line_of(result.output, "qstash")
    assert "up" in line_of(result.output, "database")


def test_status_with_the_database_down(configure: Configure) -> None:
    configure(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port()}/jobbridge")

    result = status()

    assert result.exit_code == 1
    database = line_of(result.output, "database")
    assert "DOWN" in database and "refused" in database.lower()
    assert "up" in line_of(result.output, "redis")
    assert "DOWN (required): database" in result.output
    assert "pending scheduled actions: unknown (database down)" in result.output


def test_status_with_redis_down(configure: Configure) -> None:
    port = closed_port()
    configure(REDIS_URL=f"redis://127.0.0.1:{port}/0")

    result = status()

    assert result.exit_code == 1
    redis_line = line_of(result.output, "redis")
    assert "DOWN" in redis_line and f"127.0.0.1:{port}" in redis_line
    assert "not asked" in line_of(result.output, "celery workers")
    assert "up" in line_of(result.output, "database")
    assert "DOWN (required): redis" in result.output


def test_status_with_configured_inngest_down(configure: Configure) -> None:
    configure(**{**test_env.INNGEST_ENV, "INNGEST_BASE_URL": f"http://127.0.0.1:{closed_port()}"})

    result = status()

    assert result.exit_code == 1
    assert "DOWN" in line_of(result.output, "inngest")
    assert "DOWN (required): inngest" in result.output


def test_status_with_configured_qstash_failing(
    qstash_configured: Callable[..., QStashAdmin],
) -> None:
    qstash_configured(failing=True)

    result = status()

    assert result.exit_code == 1
    assert "DOWN" in line_of(result.output, "qstash")


def test_status_watch_into_a_file_writes_every_report_as_it_comes(tmp_path: Path) -> None:
    out = tmp_path / "status.txt"
    command = [str(Path(sys.executable).parent / "jobbridge"), "status", "--watch", "0.5"]
    with out.open("w") as sink:
        watching = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "200"}, cwd=tmp_path,
        )  # fmt: skip
        try:
            wait_for(
                lambda: out.read_text().count("jobbridge status at") >= 2,
                timeout=30,
                what="two reports in the file while the command runs",
            )
        finally:
            watching.send_signal(signal.SIGINT)
            watching.wait(timeout=30)

    assert watching.returncode in (0, 1)  # the last report's health
