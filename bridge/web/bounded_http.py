"""uvicorn's httptools protocol, with the limits it lacks at an open port.

uvicorn takes a request head (its request line and headers) of any size and times
nothing before the head is whole: httptools joins a header's parts as they come, at a
cost that grows with the square of its size (a 200 MB header cost 76 s of the event
loop's CPU), and a client that connects and sends nothing, or a header line now and
then, holds its connection for as long as it likes. Nor does uvicorn stop reading a body
its response did not wait for: a sender trickling one to a route that answered at once
(401, 404) kept the connection. Here:

- a head over MAX_HEAD_BYTES is answered 431 and the connection closed, read no further;
- a head must be whole within HEAD_SECONDS of its first byte, and begin within
  HEAD_SECONDS of the connection or of the last response, else 408 and the connection
  closed;
- a response sent before its request's body came whole closes the connection.

The web server runs with it: `uvicorn bridge.web:app --http ` + UVICORN_HTTP (`jobbridge
dev`, the Dockerfile and both compose files). A proxy in front may set tighter limits.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

UVICORN_HTTP = "bridge.web.bounded_http:BoundedHttpTools"
# nginx's default for a whole head is 4 buffers of 8 KiB; uvicorn's h11 allows 16 KiB.
MAX_HEAD_BYTES = 64 * 1024
HEAD_SECONDS = 10.0


class BoundedHttpTools(HttpToolsProtocol):
    _in_head = True
    _head_bytes = 0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # what it holds of a head is at most one read over
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                why = f"the request's head is over {MAX_HEAD_BYTES} bytes"
                self._refuse(431, "Request Header Fields Too Large", why)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._end_head()  # a request's first byte: its head has HEAD_SECONDS from here
        self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline  # else self.cycle is a pipelined request's, not this one's
        if idle and self.cycle is not None and self.cycle.more_body:
            self.transport.close()  # the body's rest is not worth waiting for
            return
        super().on_response_complete()
        if idle and not self._in_head and not self.transport.is_closing():
            # The next head's clock starts now: bytes that begin no request (blank lines,
            # which also stop uvicorn's keep-alive clock) hold the connection no longer.
            self._start_head()

    def _start_head(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        if self._in_head and not self.transport.is_closing():
            why = f"the request's head did not come whole within {HEAD_SECONDS:g} s"
            self._refuse(408, "Request Timeout", why)

    def _refuse(self, status: int, reason: str, body: str) -> None:
        self._end_head()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
        )
        self.transport.close()
