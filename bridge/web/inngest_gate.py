"""What `/api/inngest` refuses before the Inngest SDK reads a byte.

The SDK verifies `X-Inngest-Signature` but not its age, reads the whole body and parses
it on the event loop before it checks anything, reads a repeated signature header's last
value, and (unless told otherwise) registers the app on an unsigned PUT. This gate, a
plain ASGI middleware on that one path, answers first:

- in cloud mode, a request with more than one signature header, a POST or PUT without
  one, or a signature whose timestamp is malformed or over 5 minutes from now: 401;
- a body declared or streamed over `INNGEST_MAX_BODY_BYTES`: 413, read no further;
- in cloud mode, a large body whose signature does not verify: 401, checked in a worker
  thread so that parsing it never stalls the event loop.

Everything else reaches the SDK with the body already read. On the way back, a 500 the
SDK gives a signed call it could not read as an Inngest request is marked no-retry:
retrying the same bytes cannot help (the check runs only on that error path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs

from inngest._internal.server_lib import ServerRequest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.web import responses

SIGNATURE_HEADER = b"x-inngest-signature"
SIGNATURE_MAX_AGE_SECONDS = 300
# Below this size the SDK's own check (JSON parse + HMAC) costs less than a thread hop.
VERIFY_IN_THREAD_ABOVE_BYTES = 64 * 1024

SignatureCheck = Callable[[bytes, str], bool]


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def signature_age_problem(header: str, now: float | None = None) -> str | None:
    """Why a signature's `t=` timestamp is unacceptable, or None when it is fresh."""
    try:
        timestamp = int(parse_qs(header, strict_parsing=True)["t"][0])
    except (KeyError, ValueError, IndexError):
        return "X-Inngest-Signature has no valid timestamp"
    now = time.time() if now is None else now
    if abs(now - timestamp) > SIGNATURE_MAX_AGE_SECONDS:
        return "X-Inngest-Signature timestamp is over 5 minutes from now"
    return None


def _signature(scope: Scope, signed_mode: bool) -> str | None:
    values: list[bytes] = [value for name, value in scope["headers"] if name == SIGNATURE_HEADER]
    if len(values) > 1:
        raise Refused(401, "X-Inngest-Signature must appear once")
    signature = values[0].decode("latin-1") if values else None
    if not signed_mode:
        return signature
    if signature is None:
        if scope["method"] in ("POST", "PUT"):
            raise Refused(401, "missing X-Inngest-Signature")
        return None
    problem = signature_age_problem(signature)
    if problem is not None:
        raise Refused(401, problem)
    return signature


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise Refused(400, "Content-Length is not a number") from None
    return None


async def _read_capped(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client went away before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class InngestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        max_body_bytes: int,
        signature_check: SignatureCheck | None,
    ) -> None:
        """`signature_check` is None in dev mode, where the SDK verifies nothing either."""
        self.app = app
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.signature_check = signature_check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._admit(scope, receive)
        except Refused as refusal:
            await responses.error(refusal.status, refusal.detail)(scope, receive, send)
            return
        if scope["method"] == "POST":
            send = _unreadable_requests_are_permanent(body, send)
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, scope: Scope, receive: Receive) -> bytes:
        signature = _signature(scope, signed_mode=self.signature_check is not None)
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            raise Refused(413, f"body over {self.max_body_bytes} bytes")
        body = await _read_capped(receive, self.max_body_bytes)
        check = self.signature_check
        large = len(body) > VERIFY_IN_THREAD_ABOVE_BYTES
        if check is not None and signature is not None and large:
            verified: bool = await run_in_threadpool(check, body, signature)
            if not verified:
                raise Refused(401, "invalid X-Inngest-Signature")
        return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the body that was read to the app, then pass later messages (disconnect) on."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


NO_RETRY_HEADER = (b"x-inngest-no-retry", b"true")


def _unreadable_requests_are_permanent(body: bytes, send: Send) -> Send:
    async def send_marked(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 500:
            headers = list(message.get("headers", []))
            retryable = NO_RETRY_HEADER[0] not in {name.lower() for name, _ in headers}
            if retryable and isinstance(ServerRequest.from_raw(body), Exception):
                message = {**message, "headers": [*headers, NO_RETRY_HEADER]}
        await send(message)

    return send_marked
