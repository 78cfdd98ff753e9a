"""A respx router served over real HTTP on loopback, for a server process (which respx in
this process cannot reach): each request is handed to the router as if it had been sent
to `base` (the host the doubles match on, e.g. tests.support.env.QSTASH_API), and the
router's answer goes back. So the in-process doubles (the QStash console) serve a real
uvicorn process unchanged."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import respx

from tests.support.local_http import LocalHTTPServer


class RouterServer:
    def __init__(self, router: respx.MockRouter, base: str) -> None:
        served = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                request = httpx.Request(
                    self.command,
                    base.rstrip("/") + self.path,
                    headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
                    content=self.rfile.read(length) if length else b"",
                )
                served.requests += 1
                try:
                    response = router.handler(request)
                    response.read()
                except httpx.TransportError as error:  # a double playing "down"
                    self.send_error(502, str(error))
                    return
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.requests = 0
        self._http = LocalHTTPServer(Handler)
        self.url = self._http.url

    def stop(self) -> None:
        self._http.stop()
