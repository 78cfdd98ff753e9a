"""`jobbridge dev`: the whole local stack in one terminal, on the embedded default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config import Settings, resolve_chain


def stack_commands(
    port: int, flower_port: int, with_flower: bool, state_dir: Path | None = None
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
            "tasks",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
        ],
        "beat": [python, "-m", "celery", "-A", "tasks", "beat", "--loglevel", "INFO"],
    }
    if with_flower:
        commands["flower"] = [
            python,
            "-m",
            "celery",
            "-A",
            "tasks",
            "flower",
            f"--port={flower_port}",
            "--address=127.0.0.1",
        ]
        if state_dir is not None:
            # Task history survives a restart. Basic auth, when FLOWER_BASIC_AUTH is set
            # (user:password), is Flower's own: it reads FLOWER_* from the environment.
            commands["flower"] += ["--persistent=True", f"--db={state_dir / 'flower.db'}"]
    return commands


def prepare(settings: Settings) -> list[str]:
    """Migrate the database and seed the demo account; return its inbox message ids."""
    from tasks.demo import ensure_demo_account
    from tasks.schema import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    _, keys = ensure_demo_account(settings.data_dir)
    return keys


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the stack as Ctrl-C does: children included


def run_dev_stack(settings: Settings, *, port: int, flower_port: int, with_flower: bool) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    keys = prepare(settings)
    processes = {
        name: subprocess.Popen(command, env=os.environ.copy())
        for name, command in stack_commands(
            port, flower_port, with_flower, settings.data_dir.resolve()
        ).items()
    }
    chain = " -> ".join(p.value for p in resolve_chain(settings).providers)
    maildir = settings.data_dir.resolve() / "maildir" / "demo"
    print(
        f"""
jobbridge dev stack (providers: {chain})
  web     http://127.0.0.1:{port}        (health: /healthz, API docs: /docs)
  flower  {f"http://127.0.0.1:{flower_port}" if with_flower else "off"}
  data    {settings.data_dir.resolve()}

Try it: archive a demo message 2 seconds from now, then watch it move.
  .venv/bin/jobbridge actions schedule --account demo@localhost --type ARCHIVE \\
      --message {keys[0] if keys else "<message id>"} --in 2s
  ls {maildir}/.Archive/cur
Run the demo rules over the whole inbox, then watch the counts:
  .venv/bin/jobbridge bulk start --account demo@localhost --include-read
  .venv/bin/jobbridge bulk show <jobId it prints>
Ctrl-C stops everything.
""",
        flush=True,
    )
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    failed = [name for name, p in processes.items() if p.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0
