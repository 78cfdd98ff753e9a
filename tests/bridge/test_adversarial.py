"""The standing adversarial suite: generated junk, signed and unsigned, at every job route
and at `/api/inngest`, and a schema-driven run over `/openapi.json`. Permanent bad input
never gets a 5xx (which QStash would retry and dead-letter), and nothing hangs.

Bounded for CI: a fixed number of examples per target, no deadline per example (the
server is a real process), and a 10-second timeout per request as the "no hang" bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inngest._internal.net import sign_request

from tasks import JOBS
from tests.support import ROOT, env
from tests.support.fake_inngest import APP_ID, FakeInngest
from tests.support.fake_qstash import mint_signature

REQUEST_TIMEOUT = 10.0  # a request still unanswered by then counts as a hang
ROUTES = sorted(spec.route for spec in JOBS.values())
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)

# JSON of any shape, with the values that broke the parser or the database before: NUL
# bytes, very long strings, integers past Python's digit limit, deep nesting.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),  # what json.dumps writes as JSON
    st.text(max_size=40),
    st.just("a\x00b"),
    st.just("x" * 300),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
raw_extremes = st.sampled_from(
    [
        b"[" * 60_000 + b"]" * 60_000,
        b'{"n": ' + b"9" * 5000 + b"}",
        b"\xff\xfe not utf-8",
        b"",
        b'{"unterminated": ',
        b'{"n": Infinity, "m": NaN}',  # Python's json reads them; no JSON has them
        json.dumps({"deep": [[[[[[[[[[{}]]]]]]]]]]}).encode(),
    ]
)


def field_names() -> st.SearchStrategy[str]:
    names = {
        field.alias or name
        for spec in JOBS.values()
        for name, field in spec.payload.model_fields.items()
    }
    return st.sampled_from(sorted(names))


# A payload-shaped object: the jobs' own field names with junk values.
payload_shaped = st.dictionaries(field_names(), json_values, max_size=6)
bodies = st.one_of(
    payload_shaped.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    raw_extremes,
)


def answered_without_a_server_error(response: httpx.Response) -> bool:
    return response.status_code < 500


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(body=bodies, auth=st.sampled_from(["api-key", "qstash", "none"]))
def test_job_routes_answer_junk_without_a_server_error(
    web: str, route: str, body: bytes, auth: str
) -> None:
    headers = {"Content-Type": "application/json"}
    if auth == "api-key":
        headers["x-api-key"] = env.INTERNAL_API_KEY
    elif auth == "qstash":
        headers["Upstash-Signature"] = mint_signature(body, env.WEBHOOK_URL + route)
        headers["Upstash-Message-Id"] = f"msg_{uuid.uuid4().hex}"

    response = httpx.post(web + route, content=body, headers=headers, timeout=REQUEST_TIMEOUT)

    assert answered_without_a_server_error(response), (response.status_code, response.text)
    if auth == "none":
        assert response.status_code == 401


def inngest_answer_is_permanent_or_fine(response: httpx.Response) -> bool:
    """Inngest's protocol answers every error with 500; a permanent one says no-retry."""
    if response.status_code < 500:
        return True
    no_retry: str | None = response.headers.get("x-inngest-no-retry")
    return no_retry == "true"


@FUZZ
@given(
    data=json_values,
    # Only functions this app serves: an unknown one stays retryable on purpose (a replica
    # behind in a rolling deploy does not have it yet; the next attempt may reach one that does).
    fn=st.sampled_from([f"{APP_ID}-{spec.fn_id}" for spec in JOBS.values()]),
    signed=st.booleans(),
)
def test_inngest_endpoint_answers_junk_events_as_permanent_failures(
    web: str, data: Any, fn: str, signed: bool
) -> None:
    event = {"name": "inbox-zero/fuzz", "data": data if isinstance(data, dict) else {"v": data}}
    body = json.dumps(FakeInngest.request_body(event, "01FUZZ", 0, {}, [])).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Inngest-Signature"] = str(sign_request(body, env.INNGEST_SIGNING_KEY))

    response = httpx.post(
        f"{web}/api/inngest",
        params={"fnId": fn, "stepId": "step"},
        content=body,
        headers=headers,
        timeout=REQUEST_TIMEOUT,
    )

    assert inngest_answer_is_permanent_or_fine(response), (response.status_code, response.text)
    if not signed:
        assert response.status_code == 401


@FUZZ
@given(body=bodies)
def test_inngest_endpoint_refuses_unsigned_junk_bodies_unread(web: str, body: bytes) -> None:
    response = httpx.post(
        f"{web}/api/inngest",
        params={"fnId": f"{APP_ID}-scheduled-action-execute"},
        content=body,
        timeout=REQUEST_TIMEOUT,
    )

    assert response.status_code == 401


@FUZZ
@given(body=bodies)
def test_inngest_endpoint_answers_signed_junk_bodies_without_retry(web: str, body: bytes) -> None:
    try:
        signature = str(sign_request(body, env.INNGEST_SIGNING_KEY))
    except Exception:  # the server signs only JSON: a body it cannot sign gets a junk one
        signature = "t=0&s=" + "0" * 64
    response = httpx.post(
        f"{web}/api/inngest",
        params={"fnId": f"{APP_ID}-scheduled-action-execute", "stepId": "step"},
        content=body,
        headers={"X-Inngest-Signature": signature, "Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT,
    )

    assert inngest_answer_is_permanent_or_fine(response), (response.status_code, response.text)


# The schema-driven run ----------------------------------------------------------------


def test_a_schemathesis_run_over_the_openapi_schema_finds_nothing(web: str, tmp_path: Path) -> None:
    """Every documented operation, generated from its schema (valid and invalid data),
    with the internal key: every check holds. Bounded per operation and in time."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
        "run",
        f"{web}/openapi.json",
        "--header",
        f"x-api-key: {env.INTERNAL_API_KEY}",
        "--header",
        f"Authorization: Bearer {env.CRON_SECRET}",
        "--checks",
        "all",
        "--max-examples",
        "15",
        "--generation-deterministic",
        # The keys above authenticate; a generated Upstash-Signature never verifies.
        "--generation-with-security-parameters",
        "false",
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--workers",
        "1",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]

    environment = {**os.environ, "COLUMNS": "120"}
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=environment, check=False
    )

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
