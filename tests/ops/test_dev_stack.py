"""`make dev` on the embedded default: the stack starts with nothing installed by hand,
an action scheduled two seconds ahead through the CLI lands in the Maildir, and the web's
/metrics, scraped with the token the stack keeps, counts the worker's delivery."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.devstack import TOKEN_FILE
from tasks.scheduled_actions import execute_scheduled_action
from tests.support.services import Process, free_port
from tests.support.wait import wait_for

BIN = Path(sys.executable).parent
# The suite's own services must not leak into the embedded default.
SUITE_VARIABLES = (
    "REDIS_URL",
    "REDIS_KEY_PREFIX",
    "DATABASE_URL",
    "DATA_DIR",
    "INTERNAL_API_KEY",
    "CRON_SECRET",
    "CELERY_ETA_HORIZON_SECONDS",
    # The stack makes its own token and multiprocess directory when they are not set.
    "METRICS_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
    "METRICS_PORT",
)


def embedded_env() -> dict[str, str]:
    """The suite's environment without its services; the worker's metrics on a free port
    (the default, 9100, may be another stack's)."""
    own = {k: v for k, v in os.environ.items() if k not in SUITE_VARIABLES}
    return {**own, "METRICS_PORT": str(free_port())}


def test_dev_stack_runs_a_scheduled_archive_on_the_embedded_default(
    tmp_path: Path, log_dir: Path
) -> None:
    env = {**embedded_env(), "FLOWER_BASIC_AUTH": "dev:dev-secret"}
    port, flower_port = free_port(), free_port()
    stack = Process(
        "dev-stack",
        [str(BIN / "jobbridge"), "dev", "--port", str(port), "--flower-port", str(flower_port)],
        env,
        log_dir,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: "Ctrl-C stops everything" in stack.log(), timeout=60, what="the banner")
        message_id = re.search(r"--message (\S+) --in 2s", stack.log())
        assert message_id, stack.log()
        wait_for(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), timeout=30, what="web")
        wait_for(lambda: "ready." in stack.log(), timeout=30, what="the worker")

        scheduled = subprocess.run(
            [
                str(BIN / "jobbridge"),
                "actions",
                "schedule",
                "--account",
                "demo@localhost",
                "--type",
                "ARCHIVE",
                "--message",
                message_id.group(1),
                "--in",
                "2s",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        receipt = json.loads(scheduled.stdout)
        assert (receipt["provider"], receipt["schedulingStatus"]) == ("celery", "SCHEDULED")

        archive = tmp_path / ".jobbridge" / "maildir" / "demo" / ".Archive" / "cur"
        landed = wait_for(
            lambda: [p.name for p in archive.iterdir()] if archive.is_dir() else [],
            timeout=30,
            what="the message to reach the Archive folder",
        )
        assert [name.split(":")[0] for name in landed] == [message_id.group(1)]
        token = (tmp_path / ".jobbridge" / TOKEN_FILE).read_text(encoding="utf-8").strip()
        done = {"job": execute_scheduled_action.name, "provider": "celery", "outcome": "done"}

        def counted() -> bool:
            text = _scrape(f"http://127.0.0.1:{port}/metrics", token)
            return _sample(text, "jobbridge_deliveries_total", done) == 1

        wait_for(counted, timeout=30, what="web's /metrics to count the worker's delivery")
        flower = f"http://127.0.0.1:{flower_port}"
        wait_for(lambda: _ok(flower + "/healthcheck"), timeout=30, what="Flower")
        assert httpx.get(flower + "/api/workers", timeout=30).status_code == 401
        workers = wait_for(
            lambda: _json(flower + "/api/workers?refresh=1", auth=("dev", "dev-secret")),
            timeout=90,
            what="Flower to see the worker",
        )
        assert len(workers) == 1
    finally:
        stack.stop()
    assert (tmp_path / ".jobbridge" / "jobbridge.db").is_file()
    assert (tmp_path / ".jobbridge" / "broker" / "queue").is_dir()
    assert list((tmp_path / ".jobbridge").glob("flower.db*"))  # Flower kept its state


def start_stack(tmp_path: Path, log_dir: Path, name: str) -> tuple[Process, int, int]:
    port, flower_port = free_port(), free_port()
    stack = Process(
        name,
        [str(BIN / "jobbridge"), "dev", "--port", str(port), "--flower-port", str(flower_port)],
        embedded_env(),
        log_dir,
        cwd=tmp_path,
    )
    wait_for(lambda: "Ctrl-C stops everything" in stack.log(), timeout=60, what="the banner")
    wait_for(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), timeout=30, what="web")
    wait_for(lambda: "ready." in stack.log(), timeout=30, what="the worker")
    wait_for(lambda: _ok(f"http://127.0.0.1:{flower_port}/healthcheck"), timeout=30, what="Flower")
    return stack, port, flower_port


# Ctrl-C in a terminal signals its whole foreground process group, and so does a
# service manager stopping the stack (`kill -TERM -- -PGID`), as this suite's own
# Process.stop does. (`make` forwards SIGTERM to its child alone: the easy case.)
STOPS = {
    "ctrl-c": lambda pid: os.killpg(pid, signal.SIGINT),
    "sigterm": lambda pid: os.killpg(pid, signal.SIGTERM),
}


@pytest.mark.parametrize("stop", STOPS.values(), ids=STOPS.keys())
def test_the_dev_stack_stops_quietly_within_10_seconds(
    stop: Callable[[int], None], tmp_path: Path, log_dir: Path, request: pytest.FixtureRequest
) -> None:
    name = f"dev-stop-{request.node.callspec.id}"
    stack, port, flower_port = start_stack(tmp_path, log_dir, name)
    try:
        banner_end = len(stack.log())
        started = time.monotonic()
        stop(stack.popen.pid)
        status = stack.popen.wait(timeout=10)
        stopped_in = time.monotonic() - started
        log = stack.log()
    finally:
        stack.stop()
    assert status == 0, log  # `make dev` would say "Error 1" otherwise
    assert stopped_in < 10
    assert "Traceback" not in log  # Flower signalled twice printed one while exiting
    assert "exited with signal" not in log  # the worker's pool processes killed under it
    assert log[banner_end:].rstrip().endswith("jobbridge dev stack stopped")
    for url in (f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{flower_port}/healthcheck"):
        assert not _ok(url), f"{url} still answers"


def test_flower_asks_for_the_password_set_only_in_dot_env(tmp_path: Path, log_dir: Path) -> None:
    # Flower reads its options from its own environment only, never from .env.
    (tmp_path / ".env").write_text("FLOWER_BASIC_AUTH=dev:from-dot-env\n", encoding="utf-8")
    stack, _, flower_port = start_stack(tmp_path, log_dir, "dev-flower-dot-env")
    try:
        workers = f"http://127.0.0.1:{flower_port}/api/workers"
        without_login = httpx.get(workers, timeout=30).status_code
        with_login = httpx.get(workers, auth=("dev", "from-dot-env"), timeout=30).status_code
    finally:
        stack.stop()
    assert (without_login, with_login) == (401, 200)


def test_the_dev_stack_does_not_flood_its_log_with_broker_hostname_warnings(
    tmp_path: Path, log_dir: Path
) -> None:
    stack, _, _ = start_stack(tmp_path, log_dir, "dev-hostname")
    try:
        time.sleep(5)  # Flower polls the broker meanwhile
        log = stack.log()
    finally:
        stack.stop()
    # Was one per connection opened: a dozen a minute. What may remain is the worker
    # describing its configuration to Flower once.
    assert log.count("No hostname was supplied") <= 1, log


def _json(url: str, auth: tuple[str, str]) -> Any:
    try:
        return httpx.get(url, auth=auth, timeout=10).json()
    except (httpx.TransportError, ValueError):
        return None  # not up yet, or busy: ask again


def _scrape(url: str, token: str) -> str:
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def _sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
