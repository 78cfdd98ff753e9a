"""The Inngest gate's bound on large bodies: a made-up signature on a large body buys a
bounded amount of CPU and memory, counted in bytes that came (never in what a header
declares), and a sender that trickles keeps no signed call out."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from bridge import bodies
from bridge.inngest import gate as gate_module
from bridge.inngest.gate import (
    LARGE_BODIES_AT_THE_CAP,
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

    def __call__(self, body: bytes, signature: str) -> str | None:
        self.calls += 1
        self.released.wait(10)
        return None


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


def gate_with(check: Any, max_body_bytes: int = 8 * 1024 * 1024) -> InngestGate:
    return InngestGate(app, path=PATH, max_body_bytes=max_body_bytes, signature_check=check)


def full_gate(check: BlockingCheck, monkeypatch: pytest.MonkeyPatch) -> InngestGate:
    """A gate whose bound on large bodies' memory is LARGE_BODIES_AT_THE_CAP of
    `large_body()` exactly."""
    monkeypatch.setattr(gate_module, "LARGE_BODY_MEMORY_BYTES", 0)
    return gate_with(check, max_body_bytes=len(large_body()))


async def hold_the_bound(gate: InngestGate, check: BlockingCheck) -> list[asyncio.Task[Any]]:
    """LARGE_BODIES_AT_THE_CAP large bodies read whole, their checks held."""
    waiting = [
        asyncio.create_task(call(gate, large_body())) for _ in range(LARGE_BODIES_AT_THE_CAP)
    ]
    async with asyncio.timeout(10):
        while gate.large_body_bytes < LARGE_BODIES_AT_THE_CAP * len(large_body()):
            await asyncio.sleep(0)  # the calls read their bodies
    return waiting


def test_a_large_body_over_the_memory_bound_is_answered_503_unchecked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = BlockingCheck()

    async def scenario() -> list[tuple[int, dict[str, str], bool]]:
        gate = full_gate(check, monkeypatch)
        waiting = await hold_the_bound(gate, check)
        one_more = await call(gate, large_body())
        check.released.set()
        return [one_more, *await asyncio.gather(*waiting)]

    one_more, *held = asyncio.run(scenario())

    status, headers, _ = one_more
    assert status == 503
    assert int(headers["retry-after"]) > 0
    assert [answer[0] for answer in held] == [401] * LARGE_BODIES_AT_THE_CAP
    assert check.calls == LARGE_BODIES_AT_THE_CAP


def test_senders_that_declare_large_bodies_and_send_nothing_keep_no_signed_call_out() -> None:
    reached: list[int] = []

    async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(len((await receive())["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gate = InngestGate(
        sdk, path=PATH, max_body_bytes=8 * 1024 * 1024, signature_check=lambda body, sig: "key"
    )
    stalled = 0

    async def sends_nothing() -> Message:
        nonlocal stalled
        stalled += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def scenario() -> tuple[int, dict[str, str], bool]:
        declared_large = b"{" + b" " * (8 * 1024 * 1024 - 2) + b"}"
        holders = [
            asyncio.create_task(call(gate, declared_large, sends_nothing)) for _ in range(50)
        ]
        async with asyncio.timeout(10):
            while stalled < len(holders):
                await asyncio.sleep(0)
        try:
            return await call(gate, large_body())
        finally:
            for holder in holders:
                holder.cancel()

    status, _, _ = asyncio.run(scenario())

    assert (status, reached) == (200, [len(large_body())])


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
    monkeypatch.setattr(bodies, "BODY_READ_SECONDS", 0.05)
    check = BlockingCheck()
    check.released.set()
    gate = gate_with(check)

    async def trickle() -> Message:
        await asyncio.Event().wait()  # the rest of the body never comes
        raise AssertionError("unreachable")

    status, _, _ = asyncio.run(call(gate, large_body(), receive=trickle))

    assert (status, gate.large_body_bytes, check.calls) == (408, 0, 0)


def hold_the_bound_then(
    gate: InngestGate, check: BlockingCheck, body: bytes, receive: Receive | None = None
) -> Any:
    """Call the gate with `body` (of undeclared length) while large bodies whose checks
    are held fill the bound on their memory."""

    async def scenario() -> tuple[int, dict[str, str], bool]:
        waiting = await hold_the_bound(gate, check)
        answer = await call(gate, body, receive, declared=False)
        check.released.set()
        await asyncio.gather(*waiting)
        return answer

    return asyncio.run(scenario())


def test_a_large_body_of_undeclared_length_over_the_memory_bound_is_answered_503(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = BlockingCheck()

    status, headers, _ = hold_the_bound_then(full_gate(check, monkeypatch), check, large_body())

    assert status == 503 and int(headers["retry-after"]) > 0
    assert check.calls == LARGE_BODIES_AT_THE_CAP  # not checked


def test_a_small_body_of_undeclared_length_is_not_held_to_the_memory_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = BlockingCheck()
    monkeypatch.setattr(gate_module, "LARGE_BODY_MEMORY_BYTES", 0)
    reached: list[bytes] = []

    async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gate = InngestGate(sdk, path=PATH, max_body_bytes=len(large_body()), signature_check=check)

    status, _, _ = hold_the_bound_then(gate, check, b'{"small": true}')

    assert (status, reached) == (200, [b'{"small": true}'])


def test_a_large_body_of_undeclared_length_that_stops_arriving_is_408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bodies, "BODY_READ_SECONDS", 0.05)
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

    assert (status, gate.large_body_bytes) == (408, 0)


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


def test_a_large_body_that_waits_too_long_for_its_check_is_503_and_gives_its_bytes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gate_module, "LARGE_BODY_CHECK_WAIT_SECONDS", 0.05)
    check = BlockingCheck()
    gate = gate_with(check)

    async def scenario() -> tuple[int, dict[str, str], bool]:
        checked = asyncio.create_task(call(gate, large_body()))  # holds the one check
        async with asyncio.timeout(10):
            while check.calls < 1:
                await asyncio.sleep(0.01)
        waiting = await call(gate, large_body())
        check.released.set()
        await checked
        return waiting

    status, headers, _ = asyncio.run(scenario())

    assert status == 503 and int(headers["retry-after"]) > 0
    assert (check.calls, gate.large_body_bytes) == (1, 0)
