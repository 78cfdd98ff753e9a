"""`jobbridge dev`: the whole local stack in one terminal, on the embedded default,
scrape-ready: /metrics and /status behind a METRICS_TOKEN kept under the data dir, web
and worker adding up in one Prometheus multiprocess directory, the worker's own port.
What it needs (web's and Flower's ports, the broker) is checked before anything starts
(bridge/devstack_checks.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, field_validator

from bridge.apps import App
from bridge.devstack_checks import StackCannotStart, stack_blockers
from bridge.metrics import MULTIPROC_ENV
from bridge.web.bounded_http import UVICORN_HTTP
from config import ENVIRONMENT_SOURCES, Settings, read_settings, resolve_chain
from config.environment import EnvironmentSettings


def stack_commands(
    port: int,
    flower_port: int,
    with_flower: bool,
    state_dir: Path | None = None,
    app_module: str = "tasks",
) -> dict[str, list[str]]:
    python = sys.executable
    commands = {
        "web": [
            python,
            "-m",
            "uvicorn",
            "bridge.web:app",
            "--http",
            UVICORN_HTTP,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            app_module,
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
        ],
        "beat": [python, "-m", "celery", "-A", app_module, "beat", "--loglevel", "INFO"],
    }
    if with_flower:
        commands["flower"] = [
            python,
            "-m",
            "bridge.devstack_flower",  # `celery`, with a clean stop on SIGTERM
            "-A",
            app_module,
            "flower",
            f"--port={flower_port}",
            "--address=127.0.0.1",
        ]
        if state_dir is not None:
            # Task history survives a restart. Basic auth, when FLOWER_BASIC_AUTH is set
            # (user:password), is Flower's own: it reads FLOWER_* from its environment,
            # which `flower_environment` fills from .env too.
            commands["flower"] += ["--persistent=True", f"--db={state_dir / 'flower.db'}"]
    return commands


# The worker's own metrics port when METRICS_PORT is not set (taken: any free one). It
# answers without a token, on METRICS_ADDR (loopback unless set).
DEV_METRICS_PORT = 9100
TOKEN_FILE = "metrics_token"  # under the data dir, mode 0600, kept across restarts
MULTIPROC_FOLDER = "metrics"  # under the data dir, emptied at every start


@dataclass(frozen=True)
class DevMetrics:
    """What the stack's processes share for Prometheus."""

    token: str
    token_file: Path | None  # where the token is kept; None: the user's METRICS_TOKEN
    token_in_shell: bool  # the user's METRICS_TOKEN is in the environment, not only .env
    multiproc_dir: Path
    own_multiproc_dir: bool  # the stack's own (emptied at start), not the user's
    port: int


def dev_metrics(settings: Settings, environ: Mapping[str, str]) -> DevMetrics:
    """The user's METRICS_TOKEN, PROMETHEUS_MULTIPROC_DIR and METRICS_PORT where set
    (the token and the port also from .env, through Settings), else the stack's own."""
    data_dir = settings.data_dir.resolve()
    token_file: Path | None = None
    if settings.metrics_token is not None:
        token = settings.metrics_token.get_secret_value()
    else:
        token_file = data_dir / TOKEN_FILE
        token = kept_token(token_file)
    users_dir = environ.get(MULTIPROC_ENV)
    return DevMetrics(
        token=token,
        token_file=token_file,
        token_in_shell=bool(environ.get("METRICS_TOKEN", "").strip()),
        multiproc_dir=Path(users_dir) if users_dir else data_dir / MULTIPROC_FOLDER,
        own_multiproc_dir=not users_dir,
        port=settings.metrics_port or _free_port(DEV_METRICS_PORT),
    )


def kept_token(path: Path) -> str:
    """The token kept in `path`; made (secrets.token_urlsafe) and written, mode 0600, the
    first time, so that a scraper's copy stays valid across restarts."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # copied or restored with looser rights: the owner's alone
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    partial.replace(path)
    return token


def _free_port(preferred: int) -> int:
    """`preferred` if a server can listen on it (on every interface, as the worker's
    does), else one the system picks."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port for the worker's metrics")


def empty_multiproc_dir(metrics: DevMetrics) -> None:
    """The stack's own directory, emptied: the last run's files would add up with this
    run's. Before any child starts, since each writes there from its import on (and
    cleans only the files of pids no longer running: a reused pid's would stay). A
    directory the user set is left to bridge.metrics, which keeps the live files."""
    if metrics.own_multiproc_dir:
        shutil.rmtree(metrics.multiproc_dir, ignore_errors=True)
    metrics.multiproc_dir.mkdir(parents=True, exist_ok=True)


def children_environment(environ: Mapping[str, str], metrics: DevMetrics) -> dict[str, str]:
    """The environment web, worker and beat start with: the stack's metrics wiring on
    top. Flower's is `flower_environment`."""
    return {
        **environ,
        "METRICS_TOKEN": metrics.token,
        MULTIPROC_ENV: str(metrics.multiproc_dir),
        "METRICS_PORT": str(metrics.port),
    }


class FlowerSettings(EnvironmentSettings):
    """Flower's options that may be set in .env like every other variable: Flower reads
    its FLOWER_* variables from its own environment only, never from .env."""

    model_config = ENVIRONMENT_SOURCES

    # user:password (comma-separate several): Flower then asks for one of them.
    flower_basic_auth: SecretStr | None = None

    @field_validator("flower_basic_auth")
    @classmethod
    def _logins(cls, value: SecretStr | None) -> SecretStr | None:
        # Flower splits each login at its first colon: without one, nobody can log in.
        logins = value.get_secret_value().split(",") if value is not None else []
        for login in filter(None, logins):
            user, colon, password = login.partition(":")
            if not (user and colon and password):
                raise ValueError(
                    "must be user:password (comma-separate several), each with a user and "
                    "a password"
                )
        return value


def flower_environment(
    environ: Mapping[str, str], flower: FlowerSettings | None = None
) -> dict[str, str]:
    """Flower's: FLOWER_BASIC_AUTH from the environment or .env (`flower`), and no metrics
    directory, or its own Prometheus metrics (flower_*) would be added up with the app's
    in web's /metrics."""
    env = {name: value for name, value in environ.items() if name != MULTIPROC_ENV}
    login = flower.flower_basic_auth if flower is not None else None
    if login is not None and login.get_secret_value():
        env["FLOWER_BASIC_AUTH"] = login.get_secret_value()
    return env


def banner(
    settings: Settings, metrics: DevMetrics, *, port: int, flower_port: int, with_flower: bool
) -> str:
    """What the stack prints once started: where everything is, and how to scrape it.
    The token itself never: the file it is kept in, or the variable the user set."""
    web = f"http://127.0.0.1:{port}"
    if metrics.token_file is not None:
        token = f"$(cat {shlex.quote(str(metrics.token_file))})"
    elif metrics.token_in_shell:
        token = "$METRICS_TOKEN"
    else:  # set in .env only, which the shell has not read
        token = "$(sed -n 's/^METRICS_TOKEN=//p' .env)"
    addr = str(settings.metrics_addr)
    worker_host = "127.0.0.1" if addr in ("0.0.0.0", "::") else addr
    reach = "loopback only" if settings.metrics_addr.is_loopback else f"on {addr}"
    kept = metrics.token_file if metrics.token_file is not None else "your METRICS_TOKEN"
    chain = " -> ".join(p.value for p in resolve_chain(settings).providers)
    return f"""
jobbridge dev stack (providers: {chain})
  web      {web}  (health: /healthz, API docs: /docs)
  status   {web}/status  (in a browser: any user name, the token as password)
  metrics  {web}/metrics  (web and worker added up)
  worker   http://{worker_host}:{metrics.port}/metrics  (its own; no token, {reach})
  flower   {f"http://127.0.0.1:{flower_port}" if with_flower else "off"}
  data     {settings.data_dir.resolve()}
  token    {kept}  (METRICS_TOKEN: /metrics and /status)

Scrape it:
  curl -H "Authorization: Bearer {token}" {web}/metrics
  curl -H "Authorization: Bearer {token}" {web}/status
"""


# A child that has not stopped this long after its SIGTERM is killed, so that the whole
# stack is gone within 10 seconds of Ctrl-C even on a busy machine. An idle worker's warm
# shutdown on the embedded broker takes 5 to 7 s (it polls the broker folder in 2-second
# rounds before it notices), so a task still running by then is cut off: on the embedded
# broker its message is lost, the trade-off the README describes.
STOP_TIMEOUT_SECONDS = 6.0


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGINT, SIGTERM and SIGHUP all stop the stack


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be sent SIGTERM if `jobbridge dev` dies
    without stopping it (kill -9), since it is in a process group of its own."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A process group of its own: Ctrl-C in the terminal reaches this process only, which
    # then stops each child with one SIGTERM. Signalled by the terminal as well, Flower
    # got a second signal while exiting (a traceback), and the worker's pool processes
    # were killed under it (reported as errors). preexec_fn is safe here: this process
    # runs no other thread.
    return subprocess.Popen(
        command,
        env=env,
        process_group=0,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # The child's group with it: whatever it started (a worker's pool) and left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_dev_stack(
    settings: Settings, app: App, *, port: int, flower_port: int, with_flower: bool
) -> int:
    """Check that the stack can start (StackCannotStart otherwise, before anything is
    done), prepare the app (migrate, seed: its `prepare_dev`) and the metrics' token and
    directory, then run web, worker, beat and Flower until Ctrl-C or until one of them
    exits."""
    flower = read_settings(FlowerSettings) if with_flower else None  # a bad login: now
    made = not settings.data_dir.exists()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The lock first: a second stack there would otherwise be told its ports are taken.
    with _only_stack_on(settings.data_dir):
        blockers = stack_blockers(
            settings, port=port, flower_port=flower_port, with_flower=with_flower
        )
        if blockers:
            if made:  # made for this try alone (its lock, the broker's folders): not kept
                shutil.rmtree(settings.data_dir, ignore_errors=True)
            raise StackCannotStart("\n".join(blockers))
        try:
            tips = list(app.prepare_dev(settings)) if app.prepare_dev is not None else []
        except BaseException:  # the database refused, or Ctrl-C: nothing has started
            if made:
                shutil.rmtree(settings.data_dir, ignore_errors=True)
            raise
        return _run_stack(settings, app, tips, port=port, flower_port=flower_port, flower=flower)


@contextlib.contextmanager
def _only_stack_on(data_dir: Path) -> Iterator[None]:
    """DATA_DIR for this stack alone, while it runs (StackCannotStart when another holds
    it): a second stack there would empty the first one's metrics and run every cron
    twice. A lock on a file in it, let go when this process ends, however it ends."""
    with (data_dir / "dev.lock").open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackCannotStart(
                f"another jobbridge dev runs on DATA_DIR ({data_dir.resolve()}): stop it, "
                "or start this one with another DATA_DIR"
            ) from None
        yield


def _run_stack(
    settings: Settings,
    app: App,
    tips: list[str],
    *,
    port: int,
    flower_port: int,
    flower: FlowerSettings | None,
) -> int:
    with_flower = flower is not None
    # SIGINT too: started from a script in the background, a process inherits SIGINT
    # ignored, and Python then leaves it ignored; Ctrl-C must stop the stack regardless.
    for stopping in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stopping, _stop_on_signal)
    metrics = dev_metrics(settings, os.environ)
    empty_multiproc_dir(metrics)  # before the first child: each writes there at import
    env = children_environment(os.environ, metrics)
    environments = {"flower": flower_environment(env, flower)}
    processes = {
        name: _start(command, environments.get(name, env))
        for name, command in stack_commands(
            port, flower_port, with_flower, settings.data_dir.resolve(), app.module
        ).items()
    }
    shown = banner(settings, metrics, port=port, flower_port=flower_port, with_flower=with_flower)
    print(f"{shown}\n{chr(10).join(tips)}\nCtrl-C stops everything.\n", flush=True)
    interrupted = False
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # Stopping is not interrupted: a second Ctrl-C would leave children behind.
        for stopping in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(stopping, signal.SIG_IGN)
        ended = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
        _stop(processes)
    if interrupted:
        print("jobbridge dev stack stopped", flush=True)
        return 0  # asked to stop: not a failure, whatever status the children ended with
    for name, status in ended.items():
        print(
            f"{name} exited with status {status}, so the dev stack stopped (see its output)",
            file=sys.stderr,
            flush=True,
        )
    return 1
