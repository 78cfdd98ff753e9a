"""Bad input is a permanent answer (489, or 415 for a body that a direct caller sent and
that cannot be read), never a 5xx that QStash would retry and dead-letter: on the wire,
in the payload models, and in the database errors a job body can meet."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from bridge.core import run_job
from bridge.db_errors import data_caused
from bridge.outcome import Delivery, Outcome, Result
from bridge.payload import Payload
from bridge.registry import JobSpec
from bridge.store.db import engine
from tasks import JOBS
from tests.support import env

EXECUTE = "/api/scheduled-actions/execute"
DIGEST = "/api/ai/digest"


def post(web: str, route: str, body: bytes, **headers: str | bytes) -> httpx.Response:
    sent = {"Content-Type": "application/json", "x-api-key": env.INTERNAL_API_KEY, **headers}
    return httpx.post(
        web + route,
        content=body,
        # In bytes, as httpx sends them (text in ASCII): a test may send a value's own bytes.
        headers={
            name.encode("ascii"): value if isinstance(value, bytes) else value.encode("ascii")
            for name, value in sent.items()
        },
        timeout=30,
    )


def digest_payload(**message: Any) -> dict[str, Any]:
    return {
        "emailAccountId": "acc",
        "message": {
            "id": "m1",
            "threadId": "t1",
            "from": "a@example.test",
            "subject": "s",
            "content": "c",
            **message,
        },
    }


# Bodies that cannot be read ---------------------------------------------------------------


def test_deeply_nested_json_is_refused_as_unreadable(web: str) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000

    response = post(web, EXECUTE, nested)

    assert response.status_code == 415
    assert "nested too deeply" in response.json()["error"]


def test_an_integer_over_pythons_digit_limit_is_refused_as_unreadable(web: str) -> None:
    body = b'{"scheduledActionId": "a", "n": ' + b"9" * 5000 + b"}"

    response = post(web, EXECUTE, body)

    assert response.status_code == 415
    assert "a number has more than 4300 digits" in response.json()["error"]
    assert "set_int_max_str_digits" not in response.json()["error"]


def test_a_body_that_is_not_utf8_is_refused_as_unreadable(web: str) -> None:
    response = post(web, EXECUTE, b'{"scheduledActionId": "\xff"}')

    assert response.status_code == 415
    assert "utf-8" in response.json()["error"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_body_in_another_unicode_encoding_is_refused_as_unreadable(
    web: str, encoding: str
) -> None:
    response = post(web, EXECUTE, '{"scheduledActionId": "a"}'.encode(encoding))

    assert response.status_code == 415
    assert "utf-8" in response.json()["error"]


def test_a_qstash_signature_over_a_body_that_is_not_utf8_cannot_be_verified(web: str) -> None:
    from tests.support.fake_qstash import mint_signature

    body = b'{"scheduledActionId": "\xff"}'
    signed = {
        "Upstash-Signature": mint_signature(body, env.WEBHOOK_URL + EXECUTE),
        "Upstash-Message-Id": "msg-not-utf8",
    }

    response = post(web, EXECUTE, body, **signed)

    assert response.status_code == 401
    assert "must be UTF-8" in response.json()["error"]


def test_an_attempt_header_with_a_superscript_digit_counts_as_the_first_attempt(
    web: str,
) -> None:
    body = json.dumps({"scheduledActionId": "does-not-exist"}).encode()

    # As the server reads header bytes (latin-1): "²", which str.isdigit() accepts.
    response = post(web, EXECUTE, body, **{"x-jobbridge-attempt": "²".encode("latin-1")})

    assert response.status_code == 200
    assert response.json()["outcome"] == "skipped"


# Values the columns cannot hold ------------------------------------------------------------


def test_a_nul_byte_in_an_id_is_a_permanent_failure_naming_the_field(web: str) -> None:
    body = json.dumps({"scheduledActionId": "a\u0000b"}).encode()

    response = post(web, EXECUTE, body)

    assert response.status_code == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert "scheduledActionId" in response.json()["error"]
    assert "NUL" in response.json()["error"]


@pytest.mark.parametrize("field", ["id", "threadId"])
def test_a_digest_message_id_longer_than_its_column_is_a_permanent_failure(
    web: str, field: str
) -> None:
    body = json.dumps(digest_payload(**{field: "x" * 300})).encode()

    response = post(web, DIGEST, body)

    assert response.status_code == 489
    assert f"message.{field}" in response.json()["error"]


def test_an_id_longer_than_its_column_is_a_permanent_failure(web: str) -> None:
    body = json.dumps({"scheduledActionId": "x" * 65}).encode()

    response = post(web, EXECUTE, body)

    assert response.status_code == 489
    assert "scheduledActionId" in response.json()["error"]


# Database errors: caused by the data, or passing ------------------------------------------


@pytest.fixture
def scratch_table() -> Iterator[str]:
    name = "scratch_bad_input"
    with engine().begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
        connection.execute(
            text(
                f"CREATE TABLE {name} (id varchar(8) PRIMARY KEY, n smallint, "
                "parent varchar(8) REFERENCES scheduled_action(id), "
                "required text NOT NULL DEFAULT 'x', CHECK (n IS NULL OR n >= 0))"
            )
        )
    yield name
    with engine().begin() as connection:
        connection.execute(text(f"DROP TABLE {name}"))


def a_job(name: str, body: Any) -> JobSpec[Any]:
    """A job of the test's own, run through the core with `run_job`."""
    return JobSpec(
        event=f"inbox-zero/test.{name}",
        name=f"test.{name}",
        route="/api/test",
        payload=Payload,
        body=body,
    )


def database_error(statement: str, **values: Any) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine().begin() as connection:
        connection.execute(text(statement), values)
    return caught.value


@pytest.mark.parametrize(
    ("statement", "values"),
    [
        ("INSERT INTO {t} (id) VALUES (:v)", {"v": "longer than eight"}),
        ("INSERT INTO {t} (id) VALUES (:v)", {"v": "a\x00b"}),
        ("INSERT INTO {t} (id, n) VALUES ('a', :v)", {"v": 10**6}),
        ("INSERT INTO {t} (id, parent) VALUES ('a', :v)", {"v": "nobody"}),
        ("INSERT INTO {t} (id, required) VALUES ('a', NULL)", {}),
        ("INSERT INTO {t} (id, n) VALUES ('a', -1)", {}),
        ("SELECT CAST(:v AS timestamptz)", {"v": "not a time"}),
    ],
    ids=[
        "too-long",
        "nul-byte",
        "out-of-range",
        "missing-reference",
        "not-null",
        "check",
        "bad-cast",
    ],
)
def test_errors_the_data_caused_are_permanent(
    scratch_table: str, statement: str, values: dict[str, Any]
) -> None:
    error = database_error(statement.format(t=scratch_table), **values)

    assert data_caused(error) is not None


def test_a_unique_violation_is_transient_since_a_concurrent_writer_won(
    scratch_table: str,
) -> None:
    with engine().begin() as connection:
        connection.execute(text(f"INSERT INTO {scratch_table} (id) VALUES ('a')"))

    error = database_error(f"INSERT INTO {scratch_table} (id) VALUES ('a')")

    assert data_caused(error) is None


def test_a_lock_timeout_is_transient(scratch_table: str) -> None:
    with engine().connect() as holder:
        holder.execute(text(f"LOCK TABLE {scratch_table} IN ACCESS EXCLUSIVE MODE"))
        error = database_error(f"SET LOCAL lock_timeout = '50ms'; SELECT * FROM {scratch_table}")
        holder.rollback()

    assert data_caused(error) is None


def test_a_lost_connection_is_transient() -> None:
    from sqlalchemy import create_engine

    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(OperationalError) as caught:
        unreachable.connect()

    assert data_caused(caught.value) is None


def test_an_error_that_is_not_the_databases_is_transient() -> None:
    assert data_caused(RuntimeError("mailbox busy")) is None


def test_the_core_answers_a_data_error_from_a_job_body_as_a_permanent_failure(
    scratch_table: str,
) -> None:
    def body(payload: Payload, delivery: Delivery) -> Result:
        with engine().begin() as connection:
            connection.execute(text(f"INSERT INTO {scratch_table} (id) VALUES ('far too long')"))
        raise AssertionError("unreachable")

    spec = a_job("data-error", body)

    result = run_job(spec, {}, Delivery("http", "d1", 0))

    assert result.outcome is Outcome.FAILED
    assert "invalid data" in result.detail


def test_the_core_retries_a_job_whose_database_went_away() -> None:
    def body(payload: Payload, delivery: Delivery) -> Result:
        from sqlalchemy import create_engine

        create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none").connect()
        raise AssertionError("unreachable")

    spec = a_job("db-down", body)

    assert run_job(spec, {}, Delivery("http", "d1", 0)).outcome is Outcome.RETRY


def test_a_retried_database_error_tells_the_provider_its_first_line_only() -> None:
    def body(payload: Payload, delivery: Delivery) -> Result:
        raise OperationalError(
            "SELECT secret FROM t WHERE subject = %(s)s",
            {"s": "a private subject"},
            psycopg.errors.DeadlockDetected("deadlock detected\nDETAIL: process 12 waits"),
        )

    spec = a_job("db-statement", body)

    result = run_job(spec, {}, Delivery("http", "d1", 0))

    assert result.outcome is Outcome.RETRY
    assert "deadlock detected" in result.detail
    assert "a private subject" not in result.detail and "SELECT" not in result.detail
    assert "process 12" not in result.detail


def test_every_top_level_string_field_of_every_job_refuses_a_nul_byte() -> None:
    for spec in JOBS.values():
        fields = spec.payload.model_json_schema(by_alias=True).get("properties", {})
        strings = [name for name, schema in fields.items() if schema.get("type") == "string"]
        for name in strings:
            result = run_job(spec, {name: "a\x00b"}, Delivery("http", "d", 0))
            assert f"{name}: Value error, must not contain a NUL" in result.detail, spec.event


# More values the wire can carry and the columns or headers cannot ------------------------


def test_a_lone_surrogate_in_text_is_a_permanent_failure_naming_the_field(web: str) -> None:
    body = json.dumps(digest_payload(subject="x\ud800")).encode()

    response = post(web, DIGEST, body)

    assert response.status_code == 489
    assert "message.subject" in response.json()["error"]


def test_a_line_break_in_a_label_id_is_a_permanent_failure_naming_the_field(web: str) -> None:
    payload = {
        "emailAccountId": "acc",
        "threadId": "t1",
        "jobId": "j1",
        "markDone": True,
        "action": "ARCHIVE",
        "processedLabelId": "P\r\nX-Injected: yes",
    }

    response = post(web, "/api/clean/gmail", json.dumps(payload).encode())

    assert response.status_code == 489
    assert "processedLabelId" in response.json()["error"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_date_outside_what_utc_can_hold_is_refused_as_input(web: str, when: str) -> None:
    response = httpx.post(
        web + "/api/bulk-process/start",
        json={"emailAccountId": "acc", "startDate": when},
        headers={"x-api-key": env.INTERNAL_API_KEY},
    )

    assert response.status_code == 422
    assert "startDate" in response.text


def test_a_qstash_token_whose_expiry_overflows_is_refused(web: str) -> None:
    import jwt

    from tests.support.fake_qstash import mint_signature

    body = json.dumps({"scheduledActionId": "a"}).encode()
    token = mint_signature(body, env.WEBHOOK_URL + EXECUTE, claims={"exp": 2**63})
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == 2**63

    response = post(web, EXECUTE, body, **{"Upstash-Signature": token, "x-api-key": ""})

    assert response.status_code == 401


def test_a_delivery_id_longer_than_the_ledger_holds_is_refused_before_running(
    web: str,
) -> None:
    body = json.dumps({"scheduledActionId": "a"}).encode()

    response = post(web, EXECUTE, body, **{"x-jobbridge-delivery-id": "d" * 300})

    assert response.status_code == 400
    assert "delivery id" in response.json()["error"]


# The internal API: the key before the body -------------------------------------------


def test_the_internal_api_refuses_a_caller_without_the_key_before_reading_the_body(
    web: str,
) -> None:
    parts = urlsplit(web)
    head = (
        "POST /api/bulk-process/start HTTP/1.1\r\n"
        f"Host: {parts.hostname}:{parts.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {60 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((str(parts.hostname), int(parts.port or 80)), 10) as c:
        c.sendall(head.encode())
        answer = c.recv(4096)  # answered with none of the 60 MB sent

    assert answer.startswith(b"HTTP/1.1 401")


def test_the_internal_api_answers_malformed_json_without_the_key_with_401(web: str) -> None:
    response = httpx.post(
        web + "/api/bulk-process/start",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 401


def test_the_internal_api_refuses_a_body_over_64_kib(web: str) -> None:
    response = httpx.post(
        web + "/api/bulk-process/start",
        json={"emailAccountId": "acc", "startDate": "2026-01-01T00:00:00Z", "pad": "x" * 70_000},
        headers={"x-api-key": env.INTERNAL_API_KEY},
    )

    assert response.status_code == 413


def test_the_internal_api_refuses_a_lone_surrogate_with_422_naming_the_field(web: str) -> None:
    body = b'{"emailAccountId": "\\ud800", "startDate": "2026-01-01T00:00:00Z"}'

    response = post(web, "/api/bulk-process/start", body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "emailAccountId"]


def test_the_internal_api_guard_leaves_the_bulk_job_routes_to_their_own_auth(web: str) -> None:
    from tests.support.fake_qstash import mint_signature

    route = "/api/bulk-process/fetcher"
    body = b"{}"
    response = post(
        web,
        route,
        body,
        **{
            "Upstash-Signature": mint_signature(body, env.WEBHOOK_URL + route),
            "Upstash-Message-Id": "msg_guard",
            "x-api-key": "",
        },
    )

    assert response.status_code == 489  # QStash's call reached the job and its validation
