"""Every route that reads a body gives it a deadline (bridge/bodies.py BODY_READ_SECONDS):
a sender that declares a length and stops holds its connection no longer than that. A
job route reads nothing from a caller that presents no credential at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.types import ASGIApp, Message

from bridge import bodies
from bridge.web.factory import create_app
from tasks.scheduled_actions import execute_scheduled_action
from tests.support import env
from tests.support.fake_qstash import mint_signature

DECLARED = b"1000"


@pytest.fixture
def app(configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> ASGIApp:
    monkeypatch.setattr(bodies, "BODY_READ_SECONDS", 0.05)
    return create_app(configure(**env.QSTASH_ENV, **env.INNGEST_ENV))


def post_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """An HTTP POST of JSON to `path` with `headers`, as uvicorn hands it to the app."""
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "server": ("testserver", 80),
        "headers": [(b"content-type", b"application/json"), *headers],
    }


def answer_to_a_stalled_body(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bool]:
    """The status of a POST whose first bytes come and the rest never does, and
    whether the app asked for the body at all."""
    asked = False
    sent: list[Message] = []

    async def stalls() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = post_scope(path, [(b"content-length", DECLARED), *headers])

    async def run() -> None:
        async with asyncio.timeout(10):
            await app(scope, stalls, send)

    asyncio.run(run())
    return sent[0]["status"], asked


def test_a_job_route_body_that_stops_arriving_is_408(app: ASGIApp) -> None:
    key = [(b"x-api-key", env.INTERNAL_API_KEY.encode())]

    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, key) == (408, True)


def test_a_job_route_call_without_a_credential_is_401_unread(app: ASGIApp) -> None:
    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, []) == (401, False)


def test_a_job_route_call_with_a_wrong_key_is_401_unread(app: ASGIApp) -> None:
    wrong = [(b"x-api-key", b"not-the-key")]

    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, wrong) == (401, False)


def test_a_small_inngest_body_that_stops_arriving_is_408(app: ASGIApp) -> None:
    made_up = f"t={int(time.time())}&s={'a' * 64}".encode()

    status, _ = answer_to_a_stalled_body(app, "/api/inngest", [(b"x-inngest-signature", made_up)])

    assert status == 408


def test_an_internal_api_body_that_stops_arriving_is_408(app: ASGIApp) -> None:
    key = [(b"x-api-key", env.INTERNAL_API_KEY.encode())]

    assert answer_to_a_stalled_body(app, "/api/bulk-process/start", key) == (408, True)


def test_a_qstash_signature_where_qstash_is_not_configured_is_401_unread(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "BODY_READ_SECONDS", 0.05)
    unconfigured = {name: None for name in env.QSTASH_ENV}
    app = create_app(configure(**unconfigured, INTERNAL_API_KEY=env.INTERNAL_API_KEY))
    signature = [(b"upstash-signature", b"made.up.token")]

    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, signature) == (
        401,
        False,
    )


def a_token_signed_with(key: str) -> list[tuple[bytes, bytes]]:
    url = env.WEBHOOK_URL + execute_scheduled_action.route
    return [(b"upstash-signature", mint_signature(b"{}", url, key=key).encode())]


def test_a_made_up_qstash_signature_is_401_unread(app: ASGIApp) -> None:
    signature = [(b"upstash-signature", b"made.up.token")]

    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, signature) == (
        401,
        False,
    )


def test_a_qstash_token_signed_with_another_key_is_401_unread(app: ASGIApp) -> None:
    other = a_token_signed_with("sig_" + "x" * 28)

    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, other) == (401, False)


@pytest.mark.parametrize("key", [env.QSTASH_CURRENT_KEY, env.QSTASH_NEXT_KEY])
def test_a_qstash_token_signed_with_either_key_has_its_body_read(app: ASGIApp, key: str) -> None:
    signed = a_token_signed_with(key)

    assert answer_to_a_stalled_body(app, execute_scheduled_action.route, signed) == (408, True)


def test_a_streamed_inngest_body_has_one_deadline_for_its_beginning_and_the_rest(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first 4 KiB are read, then the rest on the same clock: a sender whose second
    part comes just before the deadline is cut off at the deadline, not one later."""
    monkeypatch.setattr(bodies, "BODY_READ_SECONDS", 1.0)
    app = create_app(configure(**env.QSTASH_ENV, **env.INNGEST_ENV))
    parts = iter([(0.0, b"[" + b" " * 3000), (0.8, b" " * 3000)])
    made_up = f"t={int(time.time())}&s={'a' * 64}".encode()
    sent: list[Message] = []

    async def trickles() -> Message:
        for pause, chunk in parts:
            await asyncio.sleep(pause)
            return {"type": "http.request", "body": chunk, "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = post_scope("/api/inngest", [(b"x-inngest-signature", made_up)])

    async def run() -> float:
        started = time.perf_counter()
        async with asyncio.timeout(10):
            await app(scope, trickles, send)
        return time.perf_counter() - started

    took = asyncio.run(run())

    assert sent[0]["status"] == 408
    assert took < 1.5  # two deadlines in a row would take 1.8 s at least
