"""The web server's own lines (uvicorn's start, stop and one access line a request) come
in the app's LOG_FORMAT, as the app's do: JSON lines for a log pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from bridge.devstack import stack_commands
from tests.support.services import Process, free_port
from tests.support.wait import wait_for


def served_lines(
    log_format: str, log_dir: Path, *uvicorn_options: str, **environment: str
) -> list[str]:
    """The log lines of a web server that answered GET /healthz and stopped."""
    port = free_port()
    command = [*stack_commands(port, flower_port=0, with_flower=False)["web"], *uvicorn_options]
    name = f"web-log-{log_format}-{port}"
    environment = {**os.environ, **environment, "LOG_FORMAT": log_format}
    process = Process(name, command, environment, log_dir)
    try:
        wait_for(lambda: _healthy(process, port), timeout=30, what=f"{name} to answer")
    finally:
        process.stop()
    return [line for line in process.log().splitlines() if line.strip()]


def _healthy(process: Process, port: int) -> bool:
    if not process.alive():
        raise AssertionError(f"the web server exited:\n{process.log()}")
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_with_log_format_json_every_line_of_the_web_server_is_json(log_dir: Path) -> None:
    lines = served_lines("json", log_dir)

    parsed = [json.loads(line) for line in lines]  # a line that is not JSON fails here
    access = [entry for entry in parsed if entry["logger"] == "uvicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in entry["message"] for entry in access)
    assert any(entry["message"] == "Application startup complete." for entry in parsed)


def test_with_log_format_text_the_access_line_has_the_apps_text_format(log_dir: Path) -> None:
    lines = served_lines("text", log_dir)

    access = [line for line in lines if '"GET /healthz HTTP/1.1" 200' in line]
    assert access and all(" INFO uvicorn.access: " in line for line in access)


def access_log_config(formatter: str, fmt: str) -> dict[str, object]:
    """A uvicorn --log-config for its access lines alone."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "access": {"()": formatter, "fmt": fmt, "use_colors": False},
        },
        "handlers": {
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}
        },
    }


def test_a_log_config_with_a_format_of_its_own_keeps_it(log_dir: Path, tmp_path: Path) -> None:
    mine = "MINE %(client_addr)s %(request_line)s %(status_code)s"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(access_log_config("uvicorn.logging.AccessFormatter", mine)))

    lines = served_lines("json", log_dir, "--log-config", str(config))

    access = [line for line in lines if "GET /healthz HTTP/1.1" in line]
    assert access and all(line.startswith("MINE ") for line in access)


def test_a_log_config_with_a_formatter_of_its_own_keeps_it(log_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "own_formatter.py").write_text(
        "from uvicorn.logging import AccessFormatter\n\n\nclass Mine(AccessFormatter):\n    pass\n"
    )
    uvicorns = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(access_log_config("own_formatter.Mine", uvicorns)))

    lines = served_lines("json", log_dir, "--log-config", str(config), PYTHONPATH=str(tmp_path))

    access = [line for line in lines if "GET /healthz HTTP/1.1" in line]
    assert access and all(line.startswith("INFO: ") for line in access)  # uvicorn's format
