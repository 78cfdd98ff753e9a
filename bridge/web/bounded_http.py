"""uvicorn's httptools protocol, with the limits it lacks at an open port.

uvicorn takes a request head (its request line and headers) of any size and times
nothing before the head is whole: httptools joins a header's parts as they come, at a
cost that grows with the square of its size (a 200 MB header cost 76 s of the event
loop's CPU), and a client that connects and sends nothing, or a header line now and
then, holds its connection for as long as it likes. Nor does uvicorn stop reading a body
its response did not wait for: a sender trickling one to a route that answered at once
(401, 404) kept the connection. Here:

- a head over MAX_HEAD_BYTES is answered 431 and the connection closed, read no further;
- a head must be whole within HEAD_SECONDS of its first byte, else 408 and the
  connection closed; a connection on which no head begins within HEAD_SECONDS of its
  start (or of the last answer, or uvicorn's keep-alive if that is longer) is closed
  without a word, as uvicorn's keep-alive closes it: blank lines between requests,
  which stop that clock, hold it no longer;
- a response sent before its request's body came whole closes the connection.

A refusal never cuts off the answer to a pipelined request before it: it waits for
that answer, and the head's clock waits too. The web server runs with this protocol:
`uvicorn bridge.web:app --http ` + UVICORN_HTTP (`jobbridge dev`, the Dockerfile and
both compose files). A proxy in front may set tighter limits.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

UVICORN_HTTP = "bridge.web.bounded_http:BoundedHttpTools"
# nginx's default for a whole head is 4 buffers of 8 KiB; uvicorn's h11 allows 16 KiB.
MAX_HEAD_BYTES = 64 * 1024
HEAD_SECONDS = 10.0

Refusal = tuple[int, str, str]  # status, reason, body
TOO_LARGE: Refusal = (
    431,
    "Request Header Fields Too Large",
    f"the request's head is over {MAX_HEAD_BYTES} bytes",
)


class BoundedHttpTools(HttpToolsProtocol):
    _in_head = True  # no head is whole since the last one (or the connection's start)
    _head_begun = False  # ...and a byte of the next one has come
    _head_bytes = 0  # of the head so far: see data_received
    _head_parsed = 0  # of its request target and the header lines parsed whole so far
    _began_in_this_read = False
    _ended_in_this_read = False  # an earlier request's message ended in this read
    _oversized = False  # a head over the limit was parsed whole: not handed to the app
    _head_deadline: asyncio.TimerHandle | None = None
    _refusal: Refusal | None = None  # to send once the answer in progress is out

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_head(HEAD_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._began_in_this_read = self._ended_in_this_read = False
        super().data_received(data)
        if self._oversized:
            self._oversized = False
            self._refuse(TOO_LARGE)
            return
        if not self._in_head or self.transport.is_closing():
            return
        # The head so far, in bytes that came: all of a read it began in, unless an
        # earlier request ended in that read too (then what of the head was parsed);
        # every later read whole.
        if not self._began_in_this_read:
            self._head_bytes += len(data)
        else:
            self._head_bytes = self._head_parsed if self._ended_in_this_read else len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(TOO_LARGE)

    def on_message_begin(self) -> None:
        if self._oversized:
            return  # a request pipelined after one refused: the connection closes
        super().on_message_begin()
        self._began_in_this_read = True
        self._wait_for_head(HEAD_SECONDS)
        self._head_begun = True

    def on_url(self, url: bytes) -> None:
        if not self._oversized:
            self._head_parsed += len(url)
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._oversized:
            self._head_parsed += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._oversized:
            return
        self._in_head = False
        self._stop_clock()
        if self._head_parsed > MAX_HEAD_BYTES:  # it came whole in one read: not seen yet
            self._oversized = True  # refused once the read is parsed (data_received)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._oversized:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._ended_in_this_read = True
        if not self._oversized:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline  # else self.cycle is a pipelined request's, not this one's
        if idle and self._refusal is not None:
            self.server_state.total_requests += 1
            self._send_refusal(self._refusal)
            return
        if idle and self.cycle is not None and self.cycle.more_body:
            self.server_state.total_requests += 1
            self.transport.close()  # the body's rest is not worth waiting for
            return
        super().on_response_complete()
        if idle and not self._in_head and not self.transport.is_closing():
            self._wait_for_head(max(HEAD_SECONDS, float(self.timeout_keep_alive)))

    def _wait_for_head(self, seconds: float) -> None:
        self._stop_clock()
        self._in_head, self._head_begun, self._head_bytes, self._head_parsed = True, False, 0, 0
        self._head_deadline = self.loop.call_later(seconds, self._head_too_slow)

    def _stop_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _answering(self) -> bool:
        """Whether an earlier request's answer is still to go out (pipelining)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._answering():  # the head waits behind an answer: so does its clock
            self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)
        elif self._head_begun:
            why = f"the request's head did not come whole within {HEAD_SECONDS:g} s"
            self._refuse((408, "Request Timeout", why))
        else:
            self.transport.close()  # idle: closed as uvicorn's keep-alive closes it

    def _refuse(self, refusal: Refusal) -> None:
        self._in_head = False
        self._stop_clock()
        if self._answering():
            self._refusal = refusal  # after that answer: see on_response_complete
            self.flow.pause_reading()
        else:
            self._send_refusal(refusal)

    def _send_refusal(self, refusal: Refusal) -> None:
        status, reason, body = refusal
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
        )
        self.transport.close()
