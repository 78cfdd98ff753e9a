"""The web server's own lines (uvicorn's start, stop and one access line a request) come
in the app's LOG_FORMAT, as the app's do: JSON lines for a log pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from tests.support.services import start_web


def served_lines(log_format: str, log_dir: Path) -> list[str]:
    """The log lines of a web server that answered one request and stopped."""
    process, url = start_web({**os.environ, "LOG_FORMAT": log_format}, log_dir, f"web-{log_format}")
    try:
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        process.stop()
    return [line for line in process.log().splitlines() if line.strip()]


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
