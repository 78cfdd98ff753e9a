"""A job Result in HTTP terms, as QStash and direct callers understand it."""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse

from bridge.outcome import Outcome, Result

# QStash retries every status but 2xx and this one (with the header below).
QSTASH_NON_RETRYABLE = 489


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
