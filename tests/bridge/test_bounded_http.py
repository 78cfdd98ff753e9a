"""The web server's HTTP protocol (bridge/web/bounded_http.py): a request's head is
bounded in size and in time, and a body its response did not wait for is not read on.

An in-process uvicorn with a small app and short limits, and the suite's own web server
(started as `jobbridge dev` starts it) for the size limit.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from bridge.web import bounded_http
from tests.support.services import free_port
from tests.support.wait import wait_for

HEAD_SECONDS = 0.5
# uvloop's timers count from libuv's cached loop time, in whole milliseconds, so a
# deadline can fire a little before HEAD_SECONDS of wall time have passed.
TIMER_SLACK_SECONDS = 0.01


async def answers_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 without reading the body, as a route refusing a caller does; at
    /read, once it has read the whole body."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/read":
        while (await receive()).get("more_body", False):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(bounded_http, "HEAD_SECONDS", HEAD_SECONDS)
    port = free_port()
    config = uvicorn.Config(
        answers_at_once,
        host="127.0.0.1",
        port=port,
        http=bounded_http.BoundedHttpTools,
        timeout_keep_alive=1,
        lifespan="off",
        log_level="warning",
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_for(lambda: running.started, timeout=10, what="uvicorn to start")
    yield "127.0.0.1", port
    running.should_exit = True
    thread.join(timeout=10)


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=10)


def answer_and_close(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it, having
    left bytes unread)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(65536):
            received += chunk
    return received


def send_until_answered(connection: socket.socket, chunk: bytes, most: int) -> None:
    """Send `chunk` up to `most` times, stopping once the server has answered."""
    for _ in range(most):
        if select.select([connection], [], [], 0)[0]:
            return
        try:
            connection.sendall(chunk)
        except OSError:  # closed: its answer is waiting
            return


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_head_over_the_limit_is_431_and_the_connection_closed(
    server: tuple[str, int],
) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        send_until_answered(connection, b"c" * 16384, most=1024)  # up to 16 MiB
        answer = answer_and_close(connection)

    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"over 65536 bytes" in answer


def test_a_connection_that_sends_no_head_is_closed_without_a_word_after_the_deadline(
    server: tuple[str, int],
) -> None:
    started = time.monotonic()
    with connect(server) as connection:
        answer = answer_and_close(connection)

    assert answer == b""  # as uvicorn's keep-alive closes an idle connection
    assert time.monotonic() - started >= HEAD_SECONDS - TIMER_SLACK_SECONDS


def test_a_head_trickled_past_the_deadline_is_408(server: tuple[str, int]) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\n")
        for number in range(4):  # a header line now and then: the deadline still holds
            time.sleep(HEAD_SECONDS / 3)
            try:
                connection.sendall(f"X-Line-{number}: slow\r\n".encode())
            except OSError:
                break
        answer = answer_and_close(connection)

    assert answer.startswith(b"HTTP/1.1 408 ")


def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(
    server: tuple[str, int],
) -> None:
    with connect(server) as connection:
        connection.sendall(GET)
        first = connection.recv(65536)
        time.sleep(HEAD_SECONDS * 0.6)  # idle between requests
        connection.sendall(GET[:5])
        time.sleep(HEAD_SECONDS * 0.6)  # past the first deadline, within its own
        connection.sendall(GET[5:])
        second = connection.recv(65536)

    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")


def test_blank_lines_after_a_response_do_not_hold_the_connection(
    server: tuple[str, int],
) -> None:
    with connect(server) as connection:
        connection.sendall(GET)
        first = connection.recv(65536)
        started = time.monotonic()
        for _ in range(30):  # each stops uvicorn's keep-alive clock, and begins no request
            time.sleep(HEAD_SECONDS / 3)
            try:
                connection.sendall(b"\r\n")
            except OSError:
                break
        answer = answer_and_close(connection)
        held = time.monotonic() - started

    assert first.startswith(b"HTTP/1.1 200 ")
    assert answer == b""
    assert held < 3  # the keep-alive (1 s here) and a blank line or two, not 30 of them


def test_a_pipelined_head_does_not_cut_off_the_answer_before_it(
    server: tuple[str, int],
) -> None:
    body = b"x" * 100_000
    first = b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    with connect(server) as connection:
        connection.sendall(first + body + b"GET /two HTTP/1.1\r\nHo")  # the next, in part
        answered = connection.recv(65536)
        connection.sendall(b"st: x\r\n\r\n")
        second = connection.recv(65536)

    assert answered.startswith(b"HTTP/1.1 200 ")
    assert (answered + second).count(b"HTTP/1.1 200 ") == 2


def test_a_response_sent_before_the_body_came_whole_closes_the_connection(
    server: tuple[str, int],
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with connect(server) as connection:
        connection.sendall(head + b"Content-Length: 100000000\r\n\r\n{")
        answer = answer_and_close(connection)  # returns: the server closed it

    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_request_whose_body_came_whole_keeps_its_connection(server: tuple[str, int]) -> None:
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    with connect(server) as connection:
        connection.sendall(post)
        first = connection.recv(65536)
        connection.sendall(GET)
        second = connection.recv(65536)

    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")


def test_the_served_web_app_refuses_a_head_over_the_limit(web: str) -> None:
    host, port = web.removeprefix("http://").split(":")
    with connect((host, int(port))) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        send_until_answered(connection, b"c" * 16384, most=1024)
        answer: Any = answer_and_close(connection)

    assert answer.startswith(b"HTTP/1.1 431 ")


# A head of 100 KiB, sent whole in one go (one read, or a few, for the server).
OVERSIZED_GET = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"c" * 100 * 1024 + b"\r\n\r\n"


def answer_to(server: tuple[str, int], sent: bytes) -> bytes:
    with connect(server) as connection:
        connection.sendall(sent)
        return answer_and_close(connection)


def test_a_head_over_the_limit_sent_in_one_go_is_431(server: tuple[str, int]) -> None:
    assert answer_to(server, OVERSIZED_GET).startswith(b"HTTP/1.1 431 ")


def test_many_small_headers_over_the_limit_in_one_go_are_431(server: tuple[str, int]) -> None:
    headers = b"".join(b"X-%d: v\r\n" % number for number in range(20_000))
    with connect(server) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = answer_and_close(connection)

    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_just_under_the_limit_in_one_go_is_served(server: tuple[str, int]) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
    padding = bounded_http.MAX_HEAD_BYTES - len(head) - len(b"\r\n\r\n") - 64
    with connect(server) as connection:
        connection.sendall(head + b"c" * padding + b"\r\n\r\n")
        answer = connection.recv(65536)

    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_head_over_the_limit_after_a_pipelined_request_is_431_after_its_answer(
    server: tuple[str, int],
) -> None:
    answer = answer_to(server, GET + OVERSIZED_GET)

    first, refused, _ = answer.partition(b"HTTP/1.1 431 ")
    assert first.startswith(b"HTTP/1.1 200 ") and b"ok" in first
    assert refused


def test_a_request_pipelined_after_a_head_over_the_limit_is_not_served(
    server: tuple[str, int],
) -> None:
    answer = answer_to(server, OVERSIZED_GET + GET)

    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.count(b"HTTP/1.1 ") == 1
