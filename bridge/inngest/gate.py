"""What `/api/inngest` refuses before the Inngest SDK reads a byte.

The SDK verifies `X-Inngest-Signature` but not its age, reads the whole body and parses
it on the event loop before it checks anything, reads a repeated signature header's last
value, and (unless told otherwise) registers the app on an unsigned PUT. This gate, a
plain ASGI middleware on that one path, answers first:

- in cloud mode, a request with more than one signature header, a POST or PUT without
  one, or a signature that is not `t=<fresh timestamp>&s=<64 hex digits>` (a timestamp
  over 5 minutes from now is stale): 401;
- only a POST (a call) or a PUT (a sync) has its body read: a GET's (an inspection)
  or any other method's is never read, and the SDK is handed none;
- a body declared or streamed over `INNGEST_MAX_BODY_BYTES`: 413, read no further;
- in cloud mode, a POST or PUT whose signature does not verify: 401. A made-up header
  must not buy a parse on the event loop: bodies over a few KiB are verified in a worker
  thread, one at a time, so that they neither stall other requests nor add up in
  memory (the check parses and canonicalises the JSON, which costs a multiple of the
  body's size). What large bodies hold in memory while they are read, wait for their
  check or are checked is bounded by bytes that have come (LARGE_BODY_MEMORY_BYTES, or
  four bodies of the cap if that is more), never by what a header declares: a sender
  that declares a large body and trickles holds nothing it has not sent, and is cut off
  after BODY_READ_SECONDS (bridge/bodies.py, as every body: 408); a whole body waits
  for its check at most LARGE_BODY_CHECK_WAIT_SECONDS (503). A chunk that would go over
  first cuts off the bodies slow to come or to be checked (bridge/inngest/
  large_bodies.py), else is answered 503 with Retry-After, read no further; and a body
  with more JSON values
  than MAX_SEPARATORS bounds is 413 unchecked (its canonical form costs up to about 5
  microseconds per value). A smaller POST's signature is checked on the event loop
  where that takes microseconds (bridge/inngest/quick_signatures.py: most bodies),
  answered 401 when it does not verify and otherwise left to the SDK, which checks it
  again as it serves the call; a body that check cannot tell about (floats, long
  numbers, characters beyond the Basic Multilingual Plane) is checked in the worker
  thread, as a large one is;
- in cloud mode, the answers to a GET (inspection) and a PUT (an in-band sync's holds
  an inspection) go out without the hashes of the keys: one of them is the app's
  credential at Inngest's API, and an empty body's signature is easy to come by (any
  `jobbridge sync --url` target receives one), a sync's replayable for 5 minutes. An
  answer the SDK signed is signed again over what is sent, with the key the request
  verified with, as the SDK signs.

The path is matched as the router matches it: without a proxy's root path, and with its
pattern (`^/api/inngest$`, which a path ending in a decoded `%0A` matches too). Everything
else reaches the SDK with the body already read. On the way back, a 500 the
SDK gives a signed call it could not read as an Inngest request is marked no-retry:
retrying the same bytes cannot help (the check runs only on that error path).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from inngest._internal import net
from inngest._internal.server_lib import ServerRequest
from starlette._utils import get_route_path  # how the router itself reads the path
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.bodies import (
    Refused,
    body_deadline,
    declared_length,
    read_beginning,
    read_capped,
    replay,
)
from bridge.inngest.large_bodies import BUSY, CUT_OFF, LargeBodies, LargeBody
from bridge.inngest.quick_signatures import QuickCheck

SIGNATURE_HEADER = b"x-inngest-signature"
SIGNATURE_MAX_AGE_SECONDS = 300
# Up to this size a signature check (JSON parse, canonical form, HMAC) costs less than
# a thread hop; larger bodies are checked in a worker thread, this many at a time.
VERIFY_IN_THREAD_ABOVE_BYTES = 4 * 1024
LARGE_VERIFICATIONS_AT_ONCE = 1
# The bytes of large bodies held at once (read so far, waiting for their check, being
# checked): a chunk that would go over is answered 503 (Inngest retries it), and its
# body dropped. At least LARGE_BODIES_AT_THE_CAP bodies of the largest size fit.
LARGE_BODY_MEMORY_BYTES = 64 * 1024 * 1024
LARGE_BODIES_AT_THE_CAP = 4
# ...and wait at most this long for its check, in line behind others' (each under a
# second: MAX_SEPARATORS), holding its bytes meanwhile.
LARGE_BODY_CHECK_WAIT_SECONDS = 30
INVALID_SIGNATURE = "invalid X-Inngest-Signature"
# The canonical form costs up to about 5 microseconds of pure Python per JSON value (a
# long float the dearest): a body with more commas and colons than this (a bound on its
# values) is refused before its check, so that a made-up signature buys at most about a
# quarter of a second of CPU. Inngest's calls to these functions carry an event and a
# step or two, far fewer.
MAX_SEPARATORS = 50_000
# An HMAC-SHA256 in hex, as Inngest and the SDK write it.
SIGNATURE_DIGEST = re.compile(r"[0-9a-f]{64}")

# The signing key a body and its signature verify with (the SDK signs its answer with
# that one), or None: they do not.
SignatureCheck = Callable[[bytes, str], str | None]


def signature_problem(header: str, now: float | None = None) -> str | None:
    """Why a signature header is unacceptable before any body is read (its `t=` is not
    a fresh timestamp, its `s=` not a hex digest), or None."""
    try:
        fields = parse_qs(header, strict_parsing=True)
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError, IndexError):
        return "X-Inngest-Signature has no valid timestamp"
    digests = fields.get("s", [])
    if len(digests) != 1 or SIGNATURE_DIGEST.fullmatch(digests[0]) is None:
        return "X-Inngest-Signature has no valid signature (s=, 64 hex digits)"
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
    problem = signature_problem(signature)
    if problem is not None:
        raise Refused(401, problem)
    return signature


class InngestGate:
    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        max_body_bytes: int,
        signature_check: SignatureCheck | None,
        quick_check: QuickCheck | None = None,
    ) -> None:
        """`signature_check` is None in dev mode, where the SDK verifies nothing either;
        `quick_check` answers for the small calls it can tell about (without it, the SDK
        checks every small call)."""
        self.app = app
        self.path = compile_path(path)[0]  # the router's own pattern for the path
        self.max_body_bytes = max_body_bytes
        self.signature_check = signature_check
        self.quick_check = quick_check
        self.large_verifications = asyncio.Semaphore(LARGE_VERIFICATIONS_AT_ONCE)
        self.large_bodies = LargeBodies(
            max(LARGE_BODY_MEMORY_BYTES, LARGE_BODIES_AT_THE_CAP * max_body_bytes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.path.match(get_route_path(scope)) is None:
            await self.app(scope, receive, send)
            return
        try:
            body, key = await self._admit(scope, receive)
        except Refused as refusal:
            await refusal.answer(scope, receive, send)
            return
        if scope["method"] == "POST":
            send = _unreadable_requests_are_permanent(scope, body, send)
        elif self.signature_check is not None:  # an inspection (GET) or a sync (PUT)
            send = _without_key_hashes(send, key)
        await self.app(scope, replay(body, receive), send)

    async def _admit(self, scope: Scope, receive: Receive) -> tuple[bytes, str | None]:
        """The body, and the key its signature verified with here (the one the SDK
        signs its answer with; None when not verified here: dev mode, no signature, or
        a small POST, which the SDK verifies)."""
        signature = _signature(scope, signed_mode=self.signature_check is not None)
        # A call (POST) or a sync (PUT) has a body; no other method's is ever read: an
        # inspection's (GET), nor one the SDK does not serve (answered 405).
        has_body = scope["method"] in ("POST", "PUT")
        check = self.signature_check
        if check is None or signature is None:  # dev mode, or unsigned (not a POST or PUT)
            return (await self._read(scope, receive) if has_body else b""), None
        declared = declared_length(scope) if has_body else 0
        if declared is not None and declared > self.max_body_bytes:
            raise Refused(413, f"body over {self.max_body_bytes} bytes")
        if not has_body:
            body = b""
        elif declared is not None and declared <= VERIFY_IN_THREAD_ABOVE_BYTES:
            body = await self._read(scope, receive)
        else:
            # Large, or streamed without a Content-Length: a streamed body is read as far
            # as a small one goes; a large one is read on, its bytes counted as they come,
            # so that what is held in memory is bounded.
            beginning, ended, deadline = b"", False, body_deadline()
            if declared is None:
                beginning, ended = await read_beginning(
                    receive, VERIFY_IN_THREAD_ABOVE_BYTES, self.max_body_bytes, deadline
                )
            if ended and len(beginning) <= VERIFY_IN_THREAD_ABOVE_BYTES:
                body = beginning
            else:
                async with self.large_bodies.admitted() as held:
                    held.hold(len(beginning))
                    if not ended:
                        beginning = await read_capped(
                            scope, receive, self.max_body_bytes, beginning, held.hold, deadline
                        )
                    verified_with = await self._verify_large(check, beginning, signature, held)
                return beginning, verified_with
        if scope["method"] == "POST":
            return await self._admit_small_call(check, body, signature)
        key = check(body, signature)
        if key is None:
            raise Refused(401, INVALID_SIGNATURE)
        return body, key

    async def _admit_small_call(
        self, check: SignatureCheck, body: bytes, signature: str
    ) -> tuple[bytes, str | None]:
        """A small call whose signature verifies (the SDK checks it again), else Refused:
        on the event loop where the quick check can tell, else in the worker thread."""
        verdict = None if self.quick_check is None else self.quick_check(body, signature)
        if verdict is False:
            raise Refused(401, INVALID_SIGNATURE)
        if verdict is True or self.quick_check is None:
            return body, None
        async with self.large_bodies.admitted() as held:
            held.hold(len(body))
            return body, await self._verify_large(check, body, signature, held)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        return await read_capped(scope, receive, self.max_body_bytes)

    @property
    def large_body_bytes(self) -> int:
        """What the large bodies being read, waiting for their check or checked hold."""
        return self.large_bodies.held

    async def _verify_large(
        self, check: SignatureCheck, body: bytes, signature: str, held: LargeBody
    ) -> str:
        """The key the signature verifies with, else Refused: checked in a worker
        thread, one at a time, and not at all for a body of more JSON values than
        MAX_SEPARATORS bounds. Waiting for its turn, the body may still be cut off."""
        if body.count(b",") + body.count(b":") > MAX_SEPARATORS:
            raise Refused(413, f"body has over {MAX_SEPARATORS:,} JSON values to check")
        try:
            async with asyncio.timeout(LARGE_BODY_CHECK_WAIT_SECONDS):
                await self.large_verifications.acquire()
        except TimeoutError:
            raise Refused(503, BUSY, retry_after=1) from None
        if held.cut_off:  # in the moment between its turn coming and the cut reaching it
            self.large_verifications.release()
            raise Refused(503, CUT_OFF, retry_after=1)
        held.checking = True
        try:
            key = await run_in_threadpool(check, body, signature)
        finally:
            self.large_verifications.release()
        if key is None:
            raise Refused(401, INVALID_SIGNATURE)
        return key


NO_RETRY_HEADER = (b"x-inngest-no-retry", b"true")


def _unreadable_requests_are_permanent(scope: Scope, body: bytes, send: Send) -> Send:
    """A 500 for a call that no retry can mend, marked no-retry: a body that is not an
    Inngest request, or a call naming no function (`fnId`). An unknown function stays
    retryable: during a rolling deploy, a replica that does not serve it yet may."""

    def unreadable() -> bool:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return "fnId" not in query or isinstance(ServerRequest.from_raw(body), Exception)

    async def send_marked(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 500:
            headers = list(message.get("headers", []))
            retryable = NO_RETRY_HEADER[0] not in {name.lower() for name, _ in headers}
            if retryable and unreadable():
                message = {**message, "headers": [*headers, NO_RETRY_HEADER]}
        await send(message)

    return send_marked


def _without_key_hashes(send: Send, key: str | None) -> Send:
    """Pass the answer on with every `*_hash` field dropped, at any depth (an in-band
    sync's answer holds an inspection), its length fixed and, where the SDK signed it,
    signed again with `key` (else unsigned)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def send_filtered(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        original = b"".join(chunks)
        body = _drop_key_hashes(original)
        rewritten = {b"content-length", SIGNATURE_HEADER} if body != original else set()
        headers = start.get("headers", [])
        signed = any(name.lower() == SIGNATURE_HEADER for name, _ in headers)
        headers = [(n, v) for n, v in headers if n.lower() not in rewritten]
        if rewritten:
            headers.append((b"content-length", str(len(body)).encode()))
            if signed and key is not None:
                headers.append((SIGNATURE_HEADER, str(net.sign_response(body, key)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return send_filtered


def _drop_key_hashes(body: bytes) -> bytes:
    try:
        inspection = json.loads(body)
    except ValueError:
        return body
    kept = _without_hashes(inspection)
    return body if kept == inspection else json.dumps(kept).encode()


def _without_hashes(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: _without_hashes(item)
            for key, item in value.items()
            if not (isinstance(key, str) and key.endswith("_hash"))
        }
    if isinstance(value, list):
        return [_without_hashes(item) for item in value]
    return value
