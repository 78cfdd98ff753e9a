"""`/api/inngest` in cloud mode is driven by Inngest only: signed syncs register at the
configured origin, a signature is read once and must be fresh, and oversized or unsigned
bodies are refused before anything parses them."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from inngest._internal.net import sign_request

from bridge.inngest.gate import VERIFY_IN_THREAD_ABOVE_BYTES
from tests.conftest import server_env
from tests.support import env
from tests.support.fake_inngest import APP_ID, FakeInngest
from tests.support.services import Process, free_port
from tests.support.wait import wait_for

FN = "scheduled-action-execute"
A_DAY_AGO = int(time.time()) - 24 * 3600


def signature(body: bytes, at: int | None = None) -> str:
    return str(sign_request(body, env.INNGEST_SIGNING_KEY, unix_ms=at))


def execute_body(padding: int = 0, **data: str) -> bytes:
    event = {
        "name": "inbox-zero/scheduled-action.execute",
        "data": {"scheduledActionId": "does-not-exist", "padding": "x" * padding, **data},
    }
    return json.dumps(FakeInngest.request_body(event, "01RUNGUARD", 0, {}, [])).encode()


def post(
    web: str, body: bytes, headers: list[tuple[str, str]], path: str = "/api/inngest"
) -> httpx.Response:
    return httpx.post(
        web + path,
        params={"fnId": f"{APP_ID}-{FN}", "stepId": "step"},
        content=body,
        headers=[("Content-Type", "application/json"), *headers],
        timeout=30,
    )


# Sync ---------------------------------------------------------------------------------


def test_unsigned_put_is_refused_and_registers_nothing(web: str, inngest_api: Any) -> None:
    before = len(inngest_api.registrations)

    response = httpx.put(f"{web}/api/inngest", headers={"Host": "attacker.example"})

    assert response.status_code == 401
    assert len(inngest_api.registrations) == before


def test_signed_put_registers_the_configured_origin_whatever_the_host_header(
    web: str, inngest_api: Any
) -> None:
    before = len(inngest_api.registrations)
    headers = {"X-Inngest-Signature": signature(b""), "Host": "attacker.example"}

    response = httpx.put(f"{web}/api/inngest", headers=headers, timeout=30)

    assert response.status_code == 200, response.text
    (registration,) = inngest_api.registrations[before:]
    assert registration["body"]["url"].startswith(f"{web}/api/inngest")
    assert "attacker.example" not in json.dumps(registration["body"])


def test_signed_in_band_sync_answers_with_the_app_config_and_calls_nothing_back(
    web: str, inngest_api: Any
) -> None:
    before = len(inngest_api.registrations)
    body = json.dumps({"url": f"{web}/api/inngest"}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Inngest-Signature": signature(body),
        "X-Inngest-Sync-Kind": "in_band",
    }

    response = httpx.put(f"{web}/api/inngest", content=body, headers=headers, timeout=30)

    assert response.status_code == 200, response.text
    assert response.headers["x-inngest-sync-kind"] == "in_band"
    config = response.json()
    assert config["app_id"] == APP_ID
    assert f"{APP_ID}-{FN}" in {function["id"] for function in config["functions"]}
    assert len(inngest_api.registrations) == before


def test_unsigned_in_band_sync_is_refused(web: str) -> None:
    body = json.dumps({"url": "https://attacker.example/api/inngest"}).encode()
    headers = {"Content-Type": "application/json", "X-Inngest-Sync-Kind": "in_band"}

    response = httpx.put(f"{web}/api/inngest", content=body, headers=headers)

    assert response.status_code == 401


# Signatures ---------------------------------------------------------------------------


def test_a_repeated_signature_header_is_refused_even_when_one_of_them_is_valid(
    web: str,
) -> None:
    body = execute_body()
    fresh_junk = f"t={int(time.time())}&s={'0' * 64}"
    replayed = signature(body, at=A_DAY_AGO)

    response = post(
        web, body, [("X-Inngest-Signature", fresh_junk), ("X-Inngest-Signature", replayed)]
    )

    assert response.status_code == 401
    assert "once" in response.json()["error"]


def test_a_signature_header_sent_twice_with_the_same_valid_value_is_refused(web: str) -> None:
    body = execute_body()
    valid = signature(body)

    response = post(web, body, [("X-Inngest-Signature", valid), ("X-Inngest-Signature", valid)])

    assert response.status_code == 401


def test_a_path_with_an_encoded_newline_at_its_end_passes_the_gate_too(web: str) -> None:
    # The router's pattern for /api/inngest ("$") matches before a final newline too.
    body = execute_body()
    stale = signature(body, A_DAY_AGO)

    response = post(web, body, [("X-Inngest-Signature", stale)], path="/api/inngest%0A")

    assert response.status_code == 401
    assert "over 5 minutes" in response.text


def test_a_signature_without_a_timestamp_is_refused(web: str) -> None:
    body = execute_body()
    untimed = signature(body).split("&", 1)[1]

    assert post(web, body, [("X-Inngest-Signature", untimed)]).status_code == 401


def test_a_fresh_valid_signature_still_runs_the_job(web: str) -> None:
    body = execute_body()

    response = post(web, body, [("X-Inngest-Signature", signature(body))])

    assert response.status_code == 200
    assert response.json()["outcome"] == "skipped"


@pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
def test_a_signature_that_is_not_a_hex_digest_is_refused(web: str, method: str) -> None:
    not_hex = f"t={int(time.time())}&s=%C3%A9"  # "é": no HMAC compares with it

    response = httpx.request(
        method,
        f"{web}/api/inngest",
        params={"fnId": f"{APP_ID}-{FN}", "stepId": "step"},
        content=b"" if method == "GET" else execute_body(),
        headers={"Content-Type": "application/json", "X-Inngest-Signature": not_hex},
    )

    assert response.status_code == 401


# Bodies -------------------------------------------------------------------------------


def test_an_unsigned_post_is_refused_without_reading_its_declared_64_mb_body(web: str) -> None:
    answer = raw_request(web, [], declared=64 * 1024 * 1024, send=0)

    assert answer.startswith(b"HTTP/1.1 401")


def test_an_inspection_never_reads_a_body_sent_with_it(web: str) -> None:
    answer = raw_request(web, [], declared=64 * 1024 * 1024, send=1024, method="GET")

    # The SDK's own refusal of an unsigned inspection, at once: not the gate's 413 for
    # the declared size, nor a wait for the 64 MB that never come.
    assert answer.startswith(b"HTTP/1.1 401")
    assert b"x-inngest-sdk-handled: true" in answer


def test_a_body_declared_over_the_cap_is_refused_unread(web: str) -> None:
    junk = f"t={int(time.time())}&s={'0' * 64}"

    answer = raw_request(web, [f"X-Inngest-Signature: {junk}"], declared=64 * 1024 * 1024, send=0)

    assert answer.startswith(b"HTTP/1.1 413")


def test_a_chunked_body_is_refused_once_it_streams_past_the_cap(web: str) -> None:
    junk = f"t={int(time.time())}&s={'0' * 64}"
    chunk = b"[" * (1024 * 1024)

    def chunks() -> Any:
        for _ in range(16):
            yield chunk

    response = httpx.post(
        f"{web}/api/inngest",
        params={"fnId": f"{APP_ID}-{FN}"},
        content=chunks(),
        headers={"X-Inngest-Signature": junk, "Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413


def test_a_large_body_with_a_forged_signature_is_refused(web: str) -> None:
    body = execute_body(padding=512 * 1024)
    forged = f"t={int(time.time())}&s={'0' * 64}"

    response = post(web, body, [("X-Inngest-Signature", forged)])

    assert response.status_code == 401


def test_a_large_body_signed_by_inngest_is_served(web: str) -> None:
    body = execute_body(padding=512 * 1024)

    response = post(web, body, [("X-Inngest-Signature", signature(body))])

    assert response.status_code == 200
    assert response.json()["outcome"] == "skipped"


def test_other_requests_keep_answering_while_a_large_body_streams_in(web: str) -> None:
    junk = f"t={int(time.time())}&s={'0' * 64}"
    host, port = address(web)
    with socket.create_connection((host, port), timeout=30) as upload:
        upload.sendall(request_head(web, [f"X-Inngest-Signature: {junk}"], 3 * 1024 * 1024))
        upload.sendall(b"[" * (1024 * 1024))  # a third of it, then the sender pauses

        started = time.monotonic()
        health = httpx.get(f"{web}/healthz", timeout=10)
        answered_in = time.monotonic() - started

        upload.sendall(b"[" * (2 * 1024 * 1024))
        answer = upload.recv(4096)  # blocks until the server answers

    assert health.status_code == 200 and answered_in < 2.0
    assert answer.startswith(b"HTTP/1.1 401")


# A client that can declare a body it never sends ---------------------------------------


def address(web: str) -> tuple[str, int]:
    parts = urlsplit(web)
    return str(parts.hostname), int(parts.port or 80)


def request_head(web: str, headers: list[str], declared: int, method: str = "POST") -> bytes:
    host, port = address(web)
    lines = [
        f"{method} /api/inngest?fnId={APP_ID}-{FN}&stepId=step HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {declared}",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_request(
    web: str, headers: list[str], *, declared: int, send: int, method: str = "POST"
) -> bytes:
    with socket.create_connection(address(web), timeout=10) as connection:
        connection.sendall(request_head(web, headers, declared, method) + b"[" * send)
        return connection.recv(4096)


def test_a_signed_call_that_is_no_inngest_request_is_not_retried(web: str) -> None:
    body = json.dumps({"event": {"name": "x"}}).encode()  # no ctx, no steps

    response = post(web, body, [("X-Inngest-Signature", signature(body))])

    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"


def test_a_signed_call_naming_no_function_is_not_retried(web: str) -> None:
    body = execute_body()
    headers = {"Content-Type": "application/json", "X-Inngest-Signature": signature(body)}

    response = httpx.post(
        web + "/api/inngest", params={"stepId": "step"}, content=body, headers=headers
    )

    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"


def test_a_signed_call_for_a_function_this_replica_does_not_serve_is_retried(web: str) -> None:
    body = execute_body()
    headers = {"Content-Type": "application/json", "X-Inngest-Signature": signature(body)}
    params = {"fnId": f"{APP_ID}-added-by-the-next-deploy", "stepId": "step"}

    response = httpx.post(web + "/api/inngest", params=params, content=body, headers=headers)

    assert response.status_code == 500
    assert "x-inngest-no-retry" not in response.headers


@pytest.mark.parametrize("when", ["not a date", "0001-01-01T00:00:00+14:00"])
def test_a_scheduled_time_that_cannot_be_slept_until_is_not_retried(web: str, when: str) -> None:
    body = execute_body(scheduledFor=when)

    response = post(web, body, [("X-Inngest-Signature", signature(body))])

    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"
    assert "scheduledFor" in response.text


def test_a_made_up_signature_on_a_small_body_is_refused_by_the_gate(web: str) -> None:
    body = execute_body(padding=500)
    assert len(body) <= VERIFY_IN_THREAD_ABOVE_BYTES
    made_up = f"t={int(time.time())}&s={'0' * 64}"

    response = post(web, body, [("X-Inngest-Signature", made_up)])

    assert response.status_code == 401
    assert response.json() == {"error": "invalid X-Inngest-Signature"}  # not the SDK's


def float_body(**data: object) -> bytes:
    """A small call whose canonical form only the SDK's own check writes (a float)."""
    event = {"name": "inbox-zero/scheduled-action.execute", "data": data}
    return json.dumps(FakeInngest.request_body(event, "01RUNFLOAT", 0, {}, [])).encode()


def test_a_made_up_signature_on_a_small_body_with_floats_is_refused(web: str) -> None:
    body = float_body(scheduledActionId="does-not-exist", weights=[0.5] * 300)
    assert len(body) <= VERIFY_IN_THREAD_ABOVE_BYTES
    made_up = f"t={int(time.time())}&s={'0' * 64}"

    response = post(web, body, [("X-Inngest-Signature", made_up)])

    assert response.status_code == 401
    assert response.json() == {"error": "invalid X-Inngest-Signature"}


def test_a_signed_small_body_with_floats_and_wide_characters_is_served(web: str) -> None:
    body = float_body(scheduledActionId="does-not-exist \U0001f600", weight=0.1, big=2**60)

    response = post(web, body, [("X-Inngest-Signature", signature(body))])

    assert response.status_code == 200, response.text


def test_a_made_up_signature_on_a_small_sync_request_is_refused_by_the_gate(web: str) -> None:
    made_up = f"t={int(time.time())}&s={'0' * 64}"

    response = httpx.put(
        web + "/api/inngest",
        content=b'{"url": "https://attacker.example/api/inngest"}',
        headers={"Content-Type": "application/json", "X-Inngest-Signature": made_up},
    )

    assert response.status_code == 401
    assert response.json() == {"error": "invalid X-Inngest-Signature"}  # the gate's answer


# Behind a proxy that mounts the app under a prefix (uvicorn --root-path) ---------------


@pytest.fixture(scope="module")
def prefixed_web(log_dir: Path, inngest_api: Any) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        *("-m", "uvicorn", "bridge.web:app", "--host", "127.0.0.1", "--port", str(port)),
        *("--root-path", "/jb"),
    ]
    environment = {
        **server_env(inngest_api.url),
        "INNGEST_SERVE_ORIGIN": url,
        "API_DOCS": "private",
    }
    process = Process("web-root-path", command, environment, log_dir)
    wait_for(lambda: _answers(url + "/healthz"), timeout=30, what="the prefixed web server")
    yield url
    process.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_root_path_does_not_let_a_stale_signature_through(prefixed_web: str) -> None:
    body = execute_body()

    response = post(prefixed_web, body, [("X-Inngest-Signature", signature(body, A_DAY_AGO))])

    assert response.status_code == 401


def test_a_root_path_does_not_open_private_docs(prefixed_web: str) -> None:
    assert httpx.get(prefixed_web + "/openapi.json").status_code == 401
    assert httpx.get(prefixed_web + "/docs").status_code == 401


def test_a_call_signed_for_one_function_does_not_run_another(web: str) -> None:
    # Inngest signs the body, not the fnId in the query string.
    event = {"name": "inbox-zero/resend.digest", "data": {"emailAccountId": "acc"}}
    body = json.dumps(FakeInngest.request_body(event, "01RUNSWAP", 0, {}, [])).encode()

    response = httpx.post(
        f"{web}/api/inngest",
        params={"fnId": f"{APP_ID}-resend-summary", "stepId": "step"},
        content=body,
        headers={"Content-Type": "application/json", "X-Inngest-Signature": signature(body)},
    )

    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"
    assert "does not trigger" in response.text
