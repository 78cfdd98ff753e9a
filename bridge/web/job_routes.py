"""One POST route per job (QStash and direct HTTP) and per cron (Bearer CRON_SECRET)."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from bridge.bodies import Refused, read_capped
from bridge.db_errors import STORE_ERRORS, log_failure
from bridge.errors import PublishError, first_line
from bridge.http.wire import ATTEMPT_HEADER, ATTEMPTS, DELIVERY_ID_HEADER
from bridge.outcome import Delivery
from bridge.qstash.wire import MESSAGE_ID_HEADER, RETRIED_HEADER
from bridge.registry import CronSpec, JobSpec, Registry
from bridge.store.columns import EXTERNAL_LENGTH
from bridge.web import responses
from bridge.web.auth import Unauthorized, authenticate_cron, job_caller, verify_job_call
from bridge.web.deliveries import run_delivery
from bridge.web.direct_routes import Endpoint
from config import Provider, Settings

MAX_BODY_BYTES = 1024 * 1024
# A route whose store is away (STORE_ERRORS; the job's own errors are its result) asks
# the caller to come back, as for a job's retry. Any other error of a store is a bug,
# answered 500 with its traceback in the log.
log = logging.getLogger("jobbridge.web")


# Where each caller puts the delivery's id (stable across its retries) and attempt.
DELIVERY_HEADERS = {
    Provider.QSTASH: (MESSAGE_ID_HEADER, RETRIED_HEADER),
    Provider.HTTP: (DELIVERY_ID_HEADER, ATTEMPT_HEADER),
}


def delivery_headers(caller: Provider, request: Request) -> tuple[str | None, int]:
    """The caller's id for this delivery and the attempt number."""
    id_header, attempt_header = DELIVERY_HEADERS[caller]
    return request.headers.get(id_header) or None, attempt_number(
        request.headers.get(attempt_header)
    )


def attempt_number(header: str | None) -> int:
    """The attempt a header counts, 0 when it is absent or not a plain decimal number
    (`str.isdigit` also accepts digits such as "²" that `int` refuses)."""
    if header is None or not header.isascii() or not header.isdigit() or len(header) > 9:
        return 0
    return int(header)


def is_last_attempt(spec: JobSpec[Any], caller: Provider, attempt: int) -> bool:
    """Whether the caller gives up if this attempt answers "retry": QStash retries a
    message as often as it was published with (the job's `retries`, see
    bridge/qstash/publisher.py), the direct-HTTP publisher posts ATTEMPTS times."""
    if caller is Provider.QSTASH:
        return attempt >= spec.retries
    return attempt >= ATTEMPTS - 1


def refusal(caller: Provider, status: int, detail: str) -> JSONResponse:
    """A request the route will never accept as it is, from a caller that passed auth:
    `status` for a direct caller, 489 for QStash, which retries every other answer (its
    signature says the same bytes and headers would come again)."""
    if caller is Provider.QSTASH:
        return responses.non_retryable(detail)
    return responses.error(status, detail)


def unreadable(error: ValueError) -> str:
    """Why json.loads refused a body: not UTF-8 or not JSON (its own words, with the
    place), or else an integer over Python's digit limit (said without its advice on
    raising that limit, which is the server's business)."""
    if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
        return str(error)
    return f"a number has more than {sys.get_int_max_str_digits()} digits"


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON: application/json or application/<x>+json,
    parameters (charset) aside."""
    kind, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def job_endpoint(settings: Settings, spec: JobSpec[Any], path: str) -> Endpoint:
    """The job served at `path` (its route or an alias: QStash signs the path it called)."""

    async def endpoint(request: Request) -> Response:
        try:
            caller = job_caller(settings, request.headers)
            raw = await read_capped(request.scope, request.receive, MAX_BODY_BYTES)
            token = verify_job_call(settings, caller, request.headers, raw, path)
        except Unauthorized as error:
            return responses.error(401, str(error))
        except Refused as refused:
            if caller is Provider.QSTASH and refused.status == 413:
                # A body this route never takes, in a call one of this app's keys signed:
                # QStash would send the same bytes again at every retry.
                return responses.non_retryable(refused.detail)
            return responses.error(refused.status, refused.detail)
        content_type = request.headers.get("content-type", "")
        if not is_json(content_type):
            detail = f"expected application/json, got {content_type or 'none'}"
            return refusal(caller, 415, detail)
        try:
            data = json.loads(raw.decode())  # UTF-8 only: bytes would pass UTF-16 and 32
        except RecursionError:
            return refusal(caller, 415, "body is not JSON this app accepts: nested too deeply")
        except ValueError as error:
            return refusal(caller, 415, f"body is not JSON this app accepts: {unreadable(error)}")
        if not isinstance(data, dict):
            return responses.non_retryable("invalid payload: payload: must be a JSON object")

        message_id, attempt = delivery_headers(caller, request)
        if token is not None and message_id is None:
            return responses.error(401, "QStash delivery without Upstash-Message-Id")
        if message_id is not None and len(message_id) > EXTERNAL_LENGTH:
            # The ledger could not record it, after the job had run: refused before.
            return refusal(caller, 400, f"delivery id over {EXTERNAL_LENGTH} characters")
        delivery = Delivery(caller.value, message_id or uuid.uuid4().hex, attempt)
        try:
            result = await run_delivery(
                spec,
                data,
                delivery,
                message_id is not None,
                token,
                last_attempt=is_last_attempt(spec, caller, attempt),
            )
        except Unauthorized as error:
            return responses.error(401, str(error))
        except STORE_ERRORS as error:
            log.warning(
                "delivery %s of %s: its ledger is away: %s", delivery.delivery_id, path, error
            )
            return responses.unavailable("the delivery ledger", error)
        if result is None:
            return responses.result_response_for_duplicate()
        return responses.result_response(result)

    return endpoint


def cron_endpoint(settings: Settings, spec: CronSpec) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            authenticate_cron(settings, request.headers)
        except Unauthorized as error:
            return responses.error(401, str(error))
        try:
            return JSONResponse(await run_in_threadpool(spec.body))
        except STORE_ERRORS as error:
            log_failure(log, error, "cron %s: a store is away", spec.name)
            return responses.unavailable("a store the cron needs", error)
        except PublishError as error:
            log.warning("cron %s: a publish failed: %s", spec.name, first_line(error))
            return responses.publish_failed("the cron's jobs", error)

    return endpoint


def add_job_routes(app: FastAPI, settings: Settings, registry: Registry) -> dict[str, Endpoint]:
    """Every job's route and aliases, and every cron's. Returns each job path's endpoint,
    which the web app answers ahead of its router (bridge/web/direct_routes.py); the
    routes stay registered for the router's 405s and the API's schema."""
    endpoints: dict[str, Endpoint] = {}
    for spec in registry.jobs.values():
        endpoints[spec.route] = job_endpoint(settings, spec, spec.route)
        app.add_api_route(
            spec.route,
            endpoints[spec.route],
            methods=["POST"],
            name=spec.event,
            operation_id=spec.fn_id,
        )
        for number, alias in enumerate(spec.aliases, start=1):
            endpoints[alias] = job_endpoint(settings, spec, alias)
            app.add_api_route(
                alias,
                endpoints[alias],
                methods=["POST"],
                name=f"{spec.event} (alias {alias})",
                operation_id=f"{spec.fn_id}-alias-{number}",
                description=f"The job of {spec.route}, where the replaced app still posts it.",
                deprecated=True,
            )
    for cron in registry.crons.values():
        app.add_api_route(
            cron.route,
            cron_endpoint(settings, cron),
            methods=["GET", "POST"],  # schedulers differ in which they send
            name=cron.name,
            operation_id=cron.fn_id,
        )
    return endpoints
