"""The job routes refuse what they must, with the status each provider understands."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support import env
from tests.support.fake_inngest import FakeInngest
from tests.support.fake_qstash import mint_signature

ROUTE = "/api/scheduled-actions/execute"
PUBLIC_URL = env.WEBHOOK_URL + ROUTE
VALID = json.dumps({"scheduledActionId": "does-not-exist"}).encode()


def post(web: str, body: bytes, headers: dict[str, str], route: str = ROUTE) -> httpx.Response:
    return httpx.post(
        web + route, content=body, headers={"Content-Type": "application/json", **headers}
    )


def signed(body: bytes, **kwargs: Any) -> dict[str, str]:
    return {
        "Upstash-Signature": mint_signature(body, kwargs.pop("url", PUBLIC_URL), **kwargs),
        "Upstash-Message-Id": f"msg_{uuid.uuid4().hex}",
    }


# QStash signatures ---------------------------------------------------------------


def test_qstash_signature_with_current_key_is_accepted(web: str) -> None:
    response = post(web, VALID, signed(VALID))
    assert response.status_code == 200
    assert response.json()["outcome"] == "skipped"


def test_qstash_signature_with_next_key_is_accepted_during_rotation(web: str) -> None:
    assert post(web, VALID, signed(VALID, key=env.QSTASH_NEXT_KEY)).status_code == 200


def test_forged_qstash_signature_is_rejected(web: str) -> None:
    response = post(web, VALID, signed(VALID, key="sig_" + "x" * 28))
    assert response.status_code == 401
    assert "Upstash-Signature" in response.json()["error"]


def test_expired_qstash_signature_is_rejected(web: str) -> None:
    an_hour_ago = int(time.time()) - 3600
    assert post(web, VALID, signed(VALID, now=an_hour_ago)).status_code == 401


def test_qstash_signature_for_another_url_is_rejected(web: str) -> None:
    other = env.WEBHOOK_URL + "/api/scheduled-actions/sweep"
    assert post(web, VALID, signed(VALID, url=other)).status_code == 401


def test_qstash_signature_for_the_servers_private_address_is_rejected(web: str) -> None:
    # QStash signs the public URL (WEBHOOK_URL); the address it reached must not matter.
    assert post(web, VALID, signed(VALID, url=web + ROUTE)).status_code == 401


def test_qstash_signature_over_another_body_is_rejected(web: str) -> None:
    tampered = json.dumps({"scheduledActionId": "someone-else"}).encode()
    assert post(web, tampered, signed(VALID)).status_code == 401


def test_qstash_token_without_body_claim_is_rejected_not_crashed(web: str) -> None:
    import jwt

    now = int(time.time())
    token = jwt.encode(
        {"iss": "Upstash", "sub": PUBLIC_URL, "exp": now + 300, "nbf": now},
        env.QSTASH_CURRENT_KEY,
        algorithm="HS256",
    )
    assert post(web, VALID, {"Upstash-Signature": token}).status_code == 401


def test_call_without_signature_or_api_key_is_rejected(web: str) -> None:
    response = post(web, VALID, {})
    assert response.status_code == 401
    assert "missing" in response.json()["error"]


# Direct HTTP -----------------------------------------------------------------------


def test_valid_api_key_is_accepted(web: str) -> None:
    assert post(web, VALID, {"x-api-key": env.INTERNAL_API_KEY}).status_code == 200


def test_wrong_api_key_is_rejected(web: str) -> None:
    response = post(web, VALID, {"x-api-key": env.INTERNAL_API_KEY + "x"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid x-api-key"


# Inngest -----------------------------------------------------------------------------


def inngest_body() -> dict[str, Any]:
    event = {"name": "inbox-zero/scheduled-action.execute", "data": {"scheduledActionId": "nope"}}
    return FakeInngest.request_body(event, "01RUNTEST", 0, {}, [])


def test_signed_inngest_call_is_executed(web: str) -> None:
    response = FakeInngest.post(web, "scheduled-action-execute", inngest_body())
    assert response.status_code == 200
    assert response.json()["outcome"] == "skipped"


def test_unsigned_inngest_call_is_rejected_in_cloud_mode(web: str) -> None:
    response = FakeInngest.post(web, "scheduled-action-execute", inngest_body(), sign=False)
    assert response.status_code == 401


def test_inngest_signature_with_wrong_key_is_rejected(web: str) -> None:
    from inngest._internal.net import sign_request

    body = inngest_body()
    forged = str(sign_request(json.dumps(body).encode(), "signkey-test-" + "cd34" * 16))
    response = FakeInngest.post(web, "scheduled-action-execute", body, signature=forged)
    assert response.status_code == 401


def test_inngest_signature_older_than_five_minutes_is_rejected(web: str) -> None:
    from inngest._internal.net import sign_request

    body = inngest_body()
    stale = str(
        sign_request(
            json.dumps(body).encode(), env.INNGEST_SIGNING_KEY, unix_ms=int(time.time()) - 301
        )
    )
    response = FakeInngest.post(web, "scheduled-action-execute", body, signature=stale)
    assert response.status_code == 401
    assert "5 minutes" in response.json()["error"]


def test_inngest_invalid_payload_is_not_retried_and_names_the_field(web: str) -> None:
    event = {"name": "inbox-zero/scheduled-action.execute", "data": {"scheduledFor": "soon"}}
    body = FakeInngest.request_body(event, "01RUNBAD", 0, {}, [])
    response = FakeInngest.post(web, "scheduled-action-execute", body)
    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"
    assert "scheduledFor" in response.text


# Payloads and bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "scheduledActionId"),
        ({"scheduledActionId": 42}, "scheduledActionId"),
        ({"scheduledActionId": "a", "scheduledFor": "next tuesday"}, "scheduledFor"),
        (["not", "an", "object"], "payload"),
    ],
)
def test_invalid_payload_answers_489_non_retryable_naming_the_field(
    web: str, payload: Any, field: str
) -> None:
    body = json.dumps(payload).encode()
    response = post(web, body, signed(body))
    assert response.status_code == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert field in response.json()["error"]


def test_body_over_one_mebibyte_is_rejected_before_anything_else(web: str) -> None:
    huge = json.dumps({"scheduledActionId": "x" * (1024 * 1024)}).encode()
    assert post(web, huge, {"x-api-key": env.INTERNAL_API_KEY}).status_code == 413


def test_a_signed_body_over_one_mebibyte_answers_489_which_qstash_does_not_retry(
    web: str,
) -> None:
    huge = json.dumps({"scheduledActionId": "x" * (1024 * 1024)}).encode()

    response = post(web, huge, signed(huge))

    assert response.status_code == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert "1048576 bytes" in response.json()["error"]


def test_non_json_content_type_is_rejected(web: str) -> None:
    response = httpx.post(
        web + ROUTE,
        content=b"scheduledActionId=1",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "x-api-key": env.INTERNAL_API_KEY,
        },
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    "content_type", ["application/notjson; x=json", "text/json-ish", "application/jsonp"]
)
def test_a_content_type_that_only_mentions_json_is_rejected(web: str, content_type: str) -> None:
    headers = {"Content-Type": content_type, "x-api-key": env.INTERNAL_API_KEY}
    response = httpx.post(web + ROUTE, content=b'{"scheduledActionId": "x"}', headers=headers)
    assert response.status_code == 415


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/ld+json"]
)
def test_a_json_content_type_in_any_case_with_parameters_is_accepted(
    web: str, content_type: str
) -> None:
    headers = {"Content-Type": content_type, "x-api-key": env.INTERNAL_API_KEY}
    response = httpx.post(web + ROUTE, content=b'{"scheduledActionId": "x"}', headers=headers)
    assert response.status_code == 200, response.text


def test_malformed_json_from_a_direct_caller_is_415(web: str) -> None:
    body = b'{"scheduledActionId": '
    assert post(web, body, {"x-api-key": env.INTERNAL_API_KEY}).status_code == 415


def assert_permanent(response: httpx.Response, error: str) -> None:
    """489 with Upstash-NonRetryable-Error: QStash retries every other answer."""
    assert response.status_code == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert error in response.json()["error"]


def test_a_signed_qstash_body_that_is_not_json_is_permanent(web: str) -> None:
    body = b'{"scheduledActionId": '

    assert_permanent(post(web, body, signed(body)), "body is not JSON this app accepts")


def test_a_signed_qstash_body_of_another_content_type_is_permanent(web: str) -> None:
    body = b'{"scheduledActionId": "a"}'
    headers = {**signed(body), "Content-Type": "text/plain"}

    assert_permanent(post(web, body, headers), "expected application/json, got text/plain")


def test_a_signed_qstash_delivery_with_a_message_id_over_255_characters_is_permanent(
    web: str,
) -> None:
    body = b'{"scheduledActionId": "a"}'
    headers = {**signed(body), "Upstash-Message-Id": "m" * 256}

    assert_permanent(post(web, body, headers), "delivery id over 255 characters")


# Cron routes ---------------------------------------------------------------------------


def test_cron_route_needs_the_cron_secret(web: str) -> None:
    assert httpx.post(web + "/api/scheduled-actions/sweep").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(web + "/api/scheduled-actions/sweep", headers=wrong).status_code == 401


def test_cron_route_runs_the_sweep_with_the_cron_secret(web: str) -> None:
    headers = {"Authorization": f"Bearer {env.CRON_SECRET}"}
    response = httpx.post(web + "/api/scheduled-actions/sweep", headers=headers)
    assert response.status_code == 200
    assert set(response.json()) == {"reclaimed", "enqueued", "pruned_deliveries", "ran", "failed"}


def test_health_reports_database_and_broker(web: str) -> None:
    body = httpx.get(web + "/healthz").json()
    assert body["ok"] is True
    assert body["database"]["ok"] and body["broker"]["kind"] == "redis"


def test_health_is_public_so_it_names_no_job(web: str) -> None:
    assert "jobs" not in httpx.get(web + "/healthz").json()


def test_health_answers_head_as_get_without_a_body(web: str) -> None:
    response = httpx.head(web + "/healthz")

    assert (response.status_code, response.content) == (200, b"")
