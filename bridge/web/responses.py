"""A job Result in HTTP terms, as QStash and direct callers understand it."""

from __future__ import annotations

import json
import math
from typing import cast

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from bridge.errors import PublishError
from bridge.outcome import Outcome, Result

# QStash retries every status but 2xx and this one (with the header below).
QSTASH_NON_RETRYABLE = 489
# When a store the route needs (Redis, the database) is away: soon, not at once.
UNAVAILABLE_RETRY_AFTER_SECONDS = 10


def result_response(result: Result) -> JSONResponse:
    if result.outcome in (Outcome.DONE, Outcome.SKIPPED):
        return JSONResponse({"outcome": result.outcome.value, "detail": result.detail})
    if result.outcome is Outcome.FAILED:
        return non_retryable(result.detail)
    headers = {}
    if result.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
    return JSONResponse({"outcome": "retry", "error": result.detail}, 503, headers=headers)


def result_response_for_duplicate() -> JSONResponse:
    return JSONResponse({"outcome": "duplicate", "detail": "this message was already processed"})


def non_retryable(detail: str) -> JSONResponse:
    return JSONResponse(
        {"outcome": "failed", "error": detail},
        QSTASH_NON_RETRYABLE,
        headers={"Upstash-NonRetryable-Error": "true"},
    )


def error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"error": detail}, status)


def unavailable(what: str, error: BaseException) -> JSONResponse:
    """503 for a store that is away: retried, and naming the error's kind only (its text
    names hosts and ports, which the log keeps)."""
    return JSONResponse(
        {"error": f"{what} is unavailable ({type(error).__name__}); retry later"},
        503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


def publish_failed(what: str, error: PublishError) -> JSONResponse:
    """A provider that did not take the jobs a route publishes: 503 with Retry-After
    (whatever was published carries a dedup id, so the call again publishes nothing
    twice), or 502 when the provider refused the message itself and the same call cannot
    do better. Naming the provider only (the error's text names its URL)."""
    detail = f"{what} could not be published ({error.provider.value} did not take it)"
    if error.permanent:
        return JSONResponse({"error": detail}, 502)
    return JSONResponse(
        {"error": f"{detail}; retry later"},
        503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )


async def invalid_request(_request: Request, error: Exception) -> Response:
    """FastAPI's 422 for a request its models refuse, with the input echoed in ASCII
    JSON: the default answer encodes it as UTF-8, which a lone surrogate (valid in a JSON
    string, not in UTF-8) turns into a 500."""
    errors = cast(RequestValidationError, error).errors()  # registered for that type only
    body = json.dumps({"detail": jsonable_encoder(errors)})
    return Response(body, 422, media_type="application/json")
