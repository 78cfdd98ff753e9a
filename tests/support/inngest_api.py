"""A real HTTP server on loopback that answers like an Inngest server's API, for the web
server process (which respx cannot reach): it records each sync's function list, and
answers its health page."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.local_http import LocalHTTPServer


class InngestApi:
    """Records each `/fn/register`; with `error`, refuses it (500, {"error": error}) as a
    server does when registration fails."""

    def __init__(self, error: str | None = None) -> None:
        self.registrations: list[dict[str, Any]] = []
        self.error = error
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.startswith("/fn/register"):
                    api.registrations.append(
                        {"body": body, "authorization": self.headers.get("authorization", "")}
                    )
                    if api.error is not None:
                        self._answer(500, {"error": api.error})
                    else:
                        self._answer(200, {"ok": True, "modified": True})
                else:
                    self._answer(404, {"error": f"no {self.path} here"})

            def do_GET(self) -> None:
                # The server's health page, which `jobbridge status` and /status probe.
                if self.path == "/health":
                    self._answer(200, {"status": 200, "message": "OK"})
                else:
                    self._answer(404, {"error": f"no {self.path} here"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = LocalHTTPServer(Handler)
        self.url = self._http.url

    def stop(self) -> None:
        self._http.stop()
