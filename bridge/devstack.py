"""`jobbridge dev`: the whole local stack in one terminal, on the embedded default."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bridge.apps import App
from config import Settings, resolve_chain


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
            "celery",
            "-A",
            app_module,
            "flower",
            f"--port={flower_port}",
            "--address=127.0.0.1",
        ]
        if state_dir is not None:
            # Task history survives a restart. Basic auth, when FLOWER_BASIC_AUTH is set
            # (user:password), is Flower's own: it reads FLOWER_* from the environment.
            commands["flower"] += ["--persistent=True", f"--db={state_dir / 'flower.db'}"]
    return commands


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
    """Prepare the app (migrate, seed: its `prepare_dev`), then run web, worker, beat
    and Flower until Ctrl-C or until one of them exits."""
    # SIGINT too: started from a script in the background, a process inherits SIGINT
    # ignored, and Python then leaves it ignored; Ctrl-C must stop the stack regardless.
    for stopping in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stopping, _stop_on_signal)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tips = list(app.prepare_dev(settings)) if app.prepare_dev is not None else []
    env = os.environ.copy()
    processes = {
        name: _start(command, env)
        for name, command in stack_commands(
            port, flower_port, with_flower, settings.data_dir.resolve(), app.module
        ).items()
    }
    chain = " -> ".join(p.value for p in resolve_chain(settings).providers)
    print(
        f"""
jobbridge dev stack (providers: {chain})
  web     http://127.0.0.1:{port}        (health: /healthz, API docs: /docs)
  flower  {f"http://127.0.0.1:{flower_port}" if with_flower else "off"}
  data    {settings.data_dir.resolve()}

{chr(10).join(tips)}
Ctrl-C stops everything.
""",
        flush=True,
    )
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
