"""The Inngest gate's line for large bodies: a made-up signature on a large body buys a
bounded amount of CPU and memory, and never a place in an endless line."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from bridge.inngest import gate as gate_module
from bridge.inngest.gate import (
    LARGE_BODIES_IN_LINE,
    MAX_SEPARATORS,
    VERIFY_IN_THREAD_ABOVE_BYTES,
    InngestGate,
)

PATH = "/api/inngest"


def made_up_signature() -> str:
    """Well formed and fresh (as the gate checks before the body), but made up."""
    return f"t={int(time.time())}&s={'a' * 64}"


class BlockingCheck:
    """A signature check that holds every call until released, and counts them."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.calls = 0

    def __call__(self, body: bytes, signature: str) -> bool:
        self.calls += 1
        self.released.wait(10)
        return False


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("an unverified body reached the SDK")


def large_body(values: int = 10) -> bytes:
    return json.dumps({"pad": "x" * (VERIFY_IN_THREAD_ABOVE_BYTES + 1), "v": [1] * values}).encode()


async def call(
    gate: InngestGate, body: bytes, receive: Receive | None = None, *, declared: bool = True
) -> tuple[int, dict[str, str], bool]:
    """The answer's status and headers, and whether the gate read the body (`declared`:
    with its Content-Length, else streamed without one, as chunked)."""
    length = [(b"content-length", str(len(body)).encode())] if declared else []
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "root_path": "",
        "query_string": b"",
        "headers": [*length, (b"x-inngest-signature", made_up_signature().encode())],
    }
    read = False
    sent: list[Message] = []

    async def whole_body() -> Message:
        nonlocal read
        read = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await gate(scope, receive or whole_body, send)
    start = sent[0]
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, read


def gate_with(check: Any) -> InngestGate:
    return InngestGate(app, path=PATH, max_body_bytes=8 * 1024 * 1024, signature_check=check)


def test_a_large_body_beyond_the_line_is_answered_503_unread() -> None:
    check = BlockingCheck()

    async def scenario() -> list[tuple[int, dict[str, str], bool]]:
        gate = gate_with(check)
        waiting = [
            asyncio.create_task(call(gate, large_body())) for _ in range(LARGE_BODIES_IN_LINE)
        ]
        async with asyncio.timeout(10):
            while gate.large_in_line < LARGE_BODIES_IN_LINE:
                await asyncio.sleep(0)  # the calls take their places in line
        one_more = await call(gate, large_body())
        check.released.set()
        return [one_more, *await asyncio.gather(*waiting)]

    one_more, *in_line = asyncio.run(scenario())

    status, headers, read = one_more
    assert (status, read) == (503, False)
    assert int(headers["retry-after"]) > 0
    assert [answer[0] for answer in in_line] == [401] * LARGE_BODIES_IN_LINE
    assert check.calls == LARGE_BODIES_IN_LINE


def test_a_large_body_of_too_many_json_values_is_refused_unchecked() -> None:
    check = BlockingCheck()
    check.released.set()

    status, _, read = asyncio.run(call(gate_with(check), large_body(MAX_SEPARATORS + 1)))

    assert (status, read, check.calls) == (413, True, 0)


def test_a_large_body_within_the_bounds_is_checked() -> None:
    check = BlockingCheck()
    check.released.set()

    status, _, _ = asyncio.run(call(gate_with(check), large_body(1000)))

    assert (status, check.calls) == (401, 1)


def test_a_large_body_that_does_not_arrive_in_time_is_408_and_gives_its_place_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "LARGE_BODY_READ_SECONDS", 0.05)
    check = BlockingCheck()
    check.released.set()
    gate = gate_with(check)

    async def trickle() -> Message:
        await asyncio.Event().wait()  # the rest of the body never comes
        raise AssertionError("unreachable")

    status, _, _ = asyncio.run(call(gate, large_body(), receive=trickle))

    assert (status, gate.large_in_line, check.calls) == (408, 0, 0)


def fill_the_line_then(
    gate: InngestGate, check: BlockingCheck, body: bytes, receive: Receive | None = None
) -> Any:
    """Call the gate with `body` (of undeclared length) while every place in line is
    taken by a large body whose check is held."""

    async def scenario() -> tuple[int, dict[str, str], bool]:
        waiting = [
            asyncio.create_task(call(gate, large_body())) for _ in range(LARGE_BODIES_IN_LINE)
        ]
        async with asyncio.timeout(10):
            while gate.large_in_line < LARGE_BODIES_IN_LINE:
                await asyncio.sleep(0)
        answer = await call(gate, body, receive, declared=False)
        check.released.set()
        await asyncio.gather(*waiting)
        return answer

    return asyncio.run(scenario())


def test_a_large_body_of_undeclared_length_beyond_the_line_is_answered_503() -> None:
    check = BlockingCheck()

    status, headers, _ = fill_the_line_then(gate_with(check), check, large_body())

    assert status == 503 and int(headers["retry-after"]) > 0
    assert check.calls == LARGE_BODIES_IN_LINE  # not checked: refused unread past its start


def test_a_small_body_of_undeclared_length_needs_no_place_in_line() -> None:
    check = BlockingCheck()
    reached: list[bytes] = []

    async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gate = InngestGate(sdk, path=PATH, max_body_bytes=8 * 1024 * 1024, signature_check=check)

    status, _, _ = fill_the_line_then(gate, check, b'{"small": true}')

    assert (status, reached) == (200, [b'{"small": true}'])


def test_a_large_body_of_undeclared_length_that_stops_arriving_is_408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "LARGE_BODY_READ_SECONDS", 0.05)
    gate = gate_with(BlockingCheck())
    sent = False

    async def stops_after_a_large_start() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": large_body(), "more_body": True}
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    status, _, _ = asyncio.run(call(gate, b"", receive=stops_after_a_large_start, declared=False))

    assert (status, gate.large_in_line) == (408, 0)


def test_the_body_of_a_method_the_sdk_does_not_serve_is_never_read() -> None:
    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["body"] == b""  # handed on empty
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def never_read() -> Message:
        raise AssertionError("the gate read the body")

    gate = InngestGate(router, path=PATH, max_body_bytes=1024, signature_check=BlockingCheck())
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "PATCH", "path": PATH, "root_path": "", "headers": []}
    asyncio.run(gate(scope, never_read, send))

    assert sent[0]["status"] == 405
