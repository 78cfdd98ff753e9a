"""A QStash signature serves one request: a captured request sent again is refused,
whatever its unsigned headers say, while retries of the same message (new tokens) pass."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge.qstash.replay_guard import first_use
from tests.support import env
from tests.support.fake_qstash import mint_signature

ROUTE = "/api/scheduled-actions/execute"
BODY = json.dumps({"scheduledActionId": "does-not-exist"}).encode()


def deliver(web: str, signature: str, message_id: str | None, retried: int = 0) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "Upstash-Signature": signature,
        "Upstash-Retried": str(retried),
    }
    if message_id is not None:
        headers["Upstash-Message-Id"] = message_id
    return httpx.post(web + ROUTE, content=BODY, headers=headers)


def fresh_signature() -> str:
    return mint_signature(BODY, env.WEBHOOK_URL + ROUTE)


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def test_a_captured_request_replayed_under_another_message_id_is_refused(web: str) -> None:
    captured = fresh_signature()
    assert deliver(web, captured, message_id()).status_code == 200

    replay = deliver(web, captured, message_id())

    assert replay.status_code == 401
    assert "replayed" in replay.json()["error"]


def test_a_captured_request_sent_again_as_its_last_attempt_is_refused(web: str) -> None:
    signature, message = fresh_signature(), message_id()
    assert deliver(web, signature, message).status_code == 200

    again = deliver(web, signature, message, retried=3)

    assert again.status_code == 401
    assert "replayed" in again.json()["error"]


def test_a_captured_request_sent_again_unchanged_is_refused(web: str) -> None:
    signature, message = fresh_signature(), message_id()
    assert deliver(web, signature, message).status_code == 200

    assert deliver(web, signature, message).status_code == 401


def test_a_retry_of_the_same_message_with_a_new_token_passes(web: str) -> None:
    message = message_id()
    assert deliver(web, fresh_signature(), message).status_code == 200

    assert deliver(web, fresh_signature(), message, retried=1).status_code == 200


def test_a_signed_delivery_without_a_message_id_is_refused(web: str) -> None:
    response = deliver(web, fresh_signature(), None)

    assert response.status_code == 401
    assert "Upstash-Message-Id" in response.json()["error"]


@pytest.mark.parametrize("store", ["redis", "database"])
def test_a_token_is_used_once(store: str, configure: Any) -> None:
    if store == "database":
        configure(REDIS_URL=None)
    token, expires = f"jwt_{uuid.uuid4().hex}", datetime.now(UTC) + timedelta(minutes=5)

    assert first_use(token, "msg_a", expires)
    assert not first_use(token, "msg_a", expires)  # the same message again
    assert not first_use(token, "msg_b", expires)
