"""Reading a request body in plain ASGI middleware: refuse early, then hand it on.

Every read has a deadline: a body must have come whole within BODY_READ_SECONDS (else
408), so that a sender that declares a length and stops, or trickles, holds its
connection (and what it sent) no longer than that. Uvicorn itself never times a body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

T = TypeVar("T")

BODY_READ_SECONDS = 30.0


class Refused(Exception):
    def __init__(self, status: int, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.retry_after = status, detail, retry_after

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The same shape as every other refusal of a job route: {"error": detail}.
        headers = None if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        response = JSONResponse({"error": self.detail}, self.status, headers=headers)
        await response(scope, receive, send)


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise Refused(400, "Content-Length is not a number") from None
    return None


async def read_capped(
    scope: Scope,
    receive: Receive,
    limit: int,
    start: bytes = b"",
    on_chunk: Callable[[int], None] | None = None,
    deadline: float | None = None,
) -> bytes:
    """The whole body, refused (413) as soon as its declared or streamed size is over;
    `start`: what `read_beginning` read of it already, by the `deadline` it had;
    `on_chunk(size)` is told of each chunk as it comes (and may refuse it)."""
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise Refused(413, f"body over {limit} bytes")
    chunks, _ = await in_time(_read_chunks(receive, limit, limit, [start], on_chunk), deadline)
    return b"".join(chunks)


async def read_beginning(
    receive: Receive, size: int, limit: int, deadline: float | None = None
) -> tuple[bytes, bool]:
    """The body's first chunks, until more than `size` bytes have come or it ended:
    what came, and whether that was all of it."""
    chunks, ended = await in_time(_read_chunks(receive, size, limit, []), deadline)
    return b"".join(chunks), ended


def body_deadline() -> float:
    """When a body whose reading starts now must have come whole (event loop time): one
    deadline for a body read in parts."""
    return asyncio.get_running_loop().time() + BODY_READ_SECONDS


async def in_time(reading: Awaitable[T], deadline: float | None = None) -> T:
    """`reading`'s result, or 408 when it is not done by `deadline` (by default
    BODY_READ_SECONDS from now)."""
    try:
        async with asyncio.timeout_at(body_deadline() if deadline is None else deadline):
            return await reading
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {BODY_READ_SECONDS:g} s") from None


async def _read_chunks(
    receive: Receive,
    enough: int,
    limit: int,
    chunks: list[bytes],
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[list[bytes], bool]:
    size = sum(len(chunk) for chunk in chunks)
    while size <= enough:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client went away before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body over {limit} bytes")
        if on_chunk is not None:
            on_chunk(len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks, True
    return chunks, False


def replay(body: bytes, receive: Receive) -> Receive:
    """Hand the body that was read to the app, then pass later messages (disconnect) on."""
    sent = False

    async def receive_body() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_body
