"""A large body that is slow to come is cut off to make room for a new one: senders of
made-up signatures cannot keep a signed call out by filling the bound on large bodies'
memory and stalling."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from starlette.types import Message, Receive, Scope, Send

from bridge.bodies import Refused
from bridge.inngest import gate as gate_module
from bridge.inngest import large_bodies
from bridge.inngest.gate import LARGE_BODIES_AT_THE_CAP, VERIFY_IN_THREAD_ABOVE_BYTES, InngestGate
from bridge.inngest.large_bodies import BUSY, CUT_OFF, LargeBodies

PATH = "/api/inngest"
BODY = json.dumps({"pad": "x" * (VERIFY_IN_THREAD_ABOVE_BYTES + 1)}).encode()
Answer = tuple[int, dict[str, str], bytes]


async def sdk(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the Inngest SDK: answers 200 to whatever the gate lets through."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ran"})


def verifies(body: bytes, signature: str) -> str | None:
    return "signkey-test-key"


def gate(monkeypatch: pytest.MonkeyPatch) -> InngestGate:
    """A gate whose bound holds LARGE_BODIES_AT_THE_CAP bodies of BODY's size."""
    monkeypatch.setattr(gate_module, "LARGE_BODY_MEMORY_BYTES", 0)
    return InngestGate(sdk, path=PATH, max_body_bytes=len(BODY), signature_check=verifies)


async def call(gate: InngestGate, receive: Receive) -> Answer:
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-length", str(len(BODY)).encode()),
            (b"x-inngest-signature", f"t={int(time.time())}&s={'a' * 64}".encode()),
        ],
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await gate(scope, receive, send)
    headers = {name.decode(): value.decode() for name, value in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


async def whole(_: None = None) -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


def stalling() -> Receive:
    """A sender that sends all of BODY but its last byte, then nothing more."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY[:-1], "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def fill_with_stalled_senders(gate: InngestGate) -> list[asyncio.Task[Answer]]:
    """Stalled senders, started one after another, until another would not fit."""
    stalled = []
    while gate.large_body_bytes + len(BODY) - 1 <= gate.large_bodies.bound:
        holding = gate.large_body_bytes + len(BODY) - 1
        stalled.append(asyncio.create_task(call(gate, stalling())))
        async with asyncio.timeout(10):
            while gate.large_body_bytes < holding:
                await asyncio.sleep(0)
    return stalled


async def settle(tasks: list[asyncio.Task[Answer]], answered: int) -> list[Answer | None]:
    """What each task answered once `answered` of them have (None for one still waiting,
    then cancelled), a few turns of the loop later: time for any other to answer too."""
    async with asyncio.timeout(10):
        while sum(task.done() for task in tasks) < answered:
            await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    answers = [task.result() if task.done() else None for task in tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return answers


class HeldCheck:
    """A signature check that verifies, once released; `started` when it begins."""

    def __init__(self) -> None:
        self.started, self.released = threading.Event(), threading.Event()

    def __call__(self, body: bytes, signature: str) -> str | None:
        self.started.set()
        self.released.wait(10)
        return "signkey-test-key"


def test_a_signed_call_cuts_off_the_oldest_stalled_body_that_fills_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(large_bodies, "EVICTABLE_AFTER_SECONDS", 0.0)

    async def scenario() -> tuple[Answer, list[Answer | None], int]:
        room = gate(monkeypatch)
        stalled = await fill_with_stalled_senders(room)
        signed = await call(room, whole)
        return signed, await settle(stalled, answered=1), room.large_body_bytes

    signed, stalled, held_at_the_end = asyncio.run(scenario())

    assert signed[0] == 200 and signed[2] == b"ran"
    cut, *waiting = stalled
    assert cut is not None and cut[0] == 503
    assert json.loads(cut[2]) == {"error": CUT_OFF}
    assert int(cut[1]["retry-after"]) > 0
    assert waiting == [None] * (LARGE_BODIES_AT_THE_CAP - 1)  # only as many as needed
    assert held_at_the_end == 0


def test_bodies_on_their_way_for_less_than_the_grace_are_not_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(large_bodies, "EVICTABLE_AFTER_SECONDS", 3600.0)

    async def scenario() -> tuple[Answer, list[Answer | None]]:
        room = gate(monkeypatch)
        stalled = await fill_with_stalled_senders(room)
        return await call(room, whole), await settle(stalled, answered=0)

    newcomer, stalled = asyncio.run(scenario())

    assert newcomer[0] == 503 and json.loads(newcomer[2]) == {"error": BUSY}
    assert stalled == [None] * LARGE_BODIES_AT_THE_CAP


def test_a_body_whose_signature_is_being_checked_is_not_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(large_bodies, "EVICTABLE_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(gate_module, "LARGE_BODY_MEMORY_BYTES", 0)
    check = HeldCheck()

    async def scenario() -> tuple[Answer, Answer, list[Answer | None]]:
        room = InngestGate(sdk, path=PATH, max_body_bytes=len(BODY), signature_check=check)
        first = asyncio.create_task(call(room, whole))
        await asyncio.to_thread(check.started.wait, 10)  # the oldest body, in its check
        stalled = await fill_with_stalled_senders(room)
        newcomer = asyncio.create_task(call(room, whole))
        cut = await settle(stalled, answered=1)
        check.released.set()
        return await first, await newcomer, cut

    first, newcomer, stalled = asyncio.run(scenario())

    assert (first[0], newcomer[0]) == (200, 200)
    assert [answer is not None for answer in stalled] == [True, False, False]


def test_a_chunk_that_comes_before_the_cut_reaches_its_reading_is_refused() -> None:
    async def scenario() -> tuple[Refused, int]:
        bodies = LargeBodies(bound=len(BODY))
        with pytest.raises(Refused) as refused:
            async with bodies.admitted() as body:
                body.hold(10)
                body.cut(asyncio.get_running_loop().time())
                body.hold(10)  # its next chunk, before the cut ended its reading
        return refused.value, bodies.held

    refusal, held = asyncio.run(scenario())

    assert (refusal.status, refusal.detail, held) == (503, CUT_OFF, 0)
