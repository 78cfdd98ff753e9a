"""A call refused for its signature is the caller's fault: never logged as an error
(anyone can send one, and errors page someone); and only the keys Settings name verify
a call."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inngest._internal.net import sign_request

from bridge.web.factory import create_app
from tests.support import env


def test_a_call_with_a_wrong_signature_is_refused_without_an_error_log(
    configure: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    made_up = f"t={int(time.time())}&s={'a' * 64}"
    body = json.dumps({"event": {}, "events": [], "steps": {}, "ctx": {}}).encode()

    with TestClient(create_app(configure(**env.INNGEST_ENV))) as client:
        caplog.set_level(logging.WARNING)
        answer = client.post(
            "/api/inngest",
            params={"fnId": "any", "stepId": "step"},
            content=body,
            headers={"Content-Type": "application/json", "X-Inngest-Signature": made_up},
        )

    assert answer.status_code == 401
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_blank_fallback_key_in_the_environment_signs_nothing(
    configure: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # docker-compose.prod.yml passes `${INNGEST_SIGNING_KEY_FALLBACK:-}`: blank when unset.
    monkeypatch.setenv("INNGEST_SIGNING_KEY_FALLBACK", "")
    body = json.dumps({"event": {}, "events": [], "steps": {}, "ctx": {}}).encode()
    signed_with_no_key = str(sign_request(body, ""))

    with TestClient(create_app(configure(**env.INNGEST_ENV))) as client:
        answer = client.post(
            "/api/inngest",
            params={"fnId": "any", "stepId": "step"},
            content=body,
            headers={"Content-Type": "application/json", "X-Inngest-Signature": signed_with_no_key},
        )

    assert answer.status_code == 401
