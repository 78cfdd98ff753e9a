"""Real services for the suite: a PostgreSQL database and a Redis key prefix of its own,
and real processes (uvicorn, Celery workers) started and stopped by fixtures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import psycopg
import redis

from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def create_database() -> str:
    name = f"jobbridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def delete_redis_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port something listens on, as another server would, while the block runs."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


class Process:
    """A child process with its output in a log file, stopped politely then firmly."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        # Whatever the process started in its group (a worker's pool) goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


def start_web(env: Mapping[str, str], log_dir: Path, name: str = "web") -> tuple[Process, str]:
    port = free_port()
    from bridge.devstack import stack_commands  # imports `tasks`: only after pytest_configure

    command = stack_commands(port, flower_port=0, with_flower=False)["web"]
    url = f"http://127.0.0.1:{port}"
    # Inngest calls the app back where it is told, and this server's origin is its own.
    process = Process(name, command, {**env, "INNGEST_SERVE_ORIGIN": url}, log_dir)

    def healthy() -> bool:
        if not process.alive():
            raise AssertionError(f"{name} exited:\n{process.log()}")
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(healthy, timeout=30, what=f"{name} to answer /healthz")
    return process, url


def start_worker(
    env: Mapping[str, str],
    log_dir: Path,
    name: str = "worker",
    concurrency: int = 2,
    app_module: str = "tasks",
) -> Process:
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
    from bridge.devstack import stack_commands

    command = [
        *stack_commands(0, flower_port=0, with_flower=False, app_module=app_module)["worker"],
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        hostname,
        "--without-gossip",
        "--without-mingle",
    ]
    return wait_until_ready(Process(name, command, env, log_dir))


def wait_until_ready(worker: Process) -> Process:
    """Wait for a Celery worker process to say it is ready; fail at once if it exits."""

    def ready() -> bool:
        if not worker.alive():
            raise AssertionError(f"{worker.name} exited:\n{worker.log()}")
        return "ready." in worker.log()

    wait_for(ready, timeout=30, what=f"{worker.name} to be ready")
    return worker
