"""The one execution core: validate, run the body, classify the result.

Every provider adapter calls `run_job` and only translates the Result into its own
protocol, so a job behaves the same however it is delivered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from bridge import metrics
from bridge.db_errors import data_caused, log_failure, told_outside
from bridge.errors import first_line
from bridge.outcome import Delivery, Outcome, PermanentError, Result, RetryLater
from bridge.payload import describe_validation_error
from bridge.registry import JobSpec

log = logging.getLogger("jobbridge.core")
ROUTINE = frozenset({Outcome.DONE, Outcome.SKIPPED})


def run_job(spec: JobSpec[Any], data: Mapping[str, Any], delivery: Delivery) -> Result:
    started = time.perf_counter()
    try:
        payload = spec.payload.model_validate(data)
    except ValidationError as error:
        result = Result(Outcome.FAILED, describe_validation_error(error))
    else:
        try:
            result = spec.body(payload, delivery)
        except Exception as error:
            result = _error_result(spec, delivery, error)
    _observe(spec, data, delivery, result, time.perf_counter() - started)
    return result


def run_batch(
    spec: JobSpec[Any], datas: Sequence[Mapping[str, Any]], delivery: Delivery
) -> list[Result]:
    """The job's `batch_body` over many payloads: one Result each, in their order. A
    payload that does not validate fails alone. A batch body that raises (it answers per
    payload what it can tell apart) is a retry of every payload: what went wrong may be
    one payload's, so each meets it alone. Over one payload, it answers as `run_job`."""
    started = time.perf_counter()
    if spec.batch_body is None:
        raise TypeError(f"{spec.event} declares no batch_body")
    results: list[Result | None] = []
    valid: list[Any] = []
    for data in datas:
        try:
            valid.append(spec.payload.model_validate(data))
            results.append(None)
        except ValidationError as error:
            results.append(Result(Outcome.FAILED, describe_validation_error(error)))
    answers: list[Result] = []
    if valid:
        try:
            answers = spec.batch_body(valid, delivery)
            if len(answers) != len(valid):
                raise RuntimeError(
                    f"batch_body answered {len(answers)} results for {len(valid)} payloads"
                )
        except Exception as error:
            answers = [_batch_error(spec, delivery, error, len(valid))] * len(valid)
    filled = iter(answers)
    done = [result if result is not None else next(filled) for result in results]
    each = (time.perf_counter() - started) / max(1, len(done))
    for data, result in zip(datas, done, strict=True):
        _observe(spec, data, delivery, result, each)
    return done


def _error_result(spec: JobSpec[Any], delivery: Delivery, error: Exception) -> Result:
    """What a body's error makes of its delivery: failed for good, a retry after the wait
    the body asked for, or as `_classify` judges anything else (transient until proven
    otherwise: retried with backoff)."""
    if isinstance(error, PermanentError):
        return Result(Outcome.FAILED, str(error))
    if isinstance(error, RetryLater):
        return Result(Outcome.RETRY, str(error), error.retry_after)
    return _classify(spec, delivery, error)


def _batch_error(spec: JobSpec[Any], delivery: Delivery, error: Exception, payloads: int) -> Result:
    """A batch body's error: over one payload as `run_job` would have it; over many, a
    retry of each (what went wrong may be one payload's), keeping a RetryLater's wait."""
    if payloads == 1 or isinstance(error, RetryLater):
        return _error_result(spec, delivery, error)
    log_failure(
        log,
        error,
        "job %s batch of %d raised on %s delivery %s; each runs again alone",
        spec.event,
        payloads,
        *delivery_ids(delivery),
    )
    return Result(Outcome.RETRY, told_outside(error))


async def early_result(
    spec: JobSpec[Any], data: Mapping[str, Any], delivery: Delivery
) -> Result | None:
    """The job's `answer_early`, awaited on the event loop: a done or skipped Result, or
    None when `run_job` has to run (in a thread). Anything else it would say (no early
    answer, a payload that does not validate, a retry, any error, a database it cannot
    read from the loop) is left to the body, which decides with all it has, hooks and
    error reports included; an early answer is only ever a shortcut to the same one."""
    if spec.answer_early is None:
        return None
    started = time.perf_counter()
    try:
        result = await spec.answer_early(spec.payload.model_validate(data))
    except Exception as error:  # the body meets it again, and reports it
        log.debug("job %s: no early answer (%s: %s)", spec.event, type(error).__name__, error)
        return None
    if result is None or result.outcome not in ROUTINE:
        return None
    _observe(spec, data, delivery, result, time.perf_counter() - started)
    return result


def _observe(
    spec: JobSpec[Any], data: Mapping[str, Any], delivery: Delivery, result: Result, seconds: float
) -> None:
    # Here, once for every provider: the same series whichever one delivered the job.
    metrics.DELIVERY_SECONDS.labels(spec.name, delivery.provider).observe(seconds)
    metrics.DELIVERIES.labels(spec.name, delivery.provider, result.outcome.value).inc()
    # Done and skipped are the routine answers, thousands a second in a burst: at DEBUG,
    # since one INFO line each (and its handler's lock) cost a fifth of a delivery.
    level = logging.DEBUG if result.outcome in ROUTINE else logging.INFO
    if log.isEnabledFor(level):
        _log_outcome(level, spec, data, delivery, result, seconds)


def _log_outcome(
    level: int,
    spec: JobSpec[Any],
    data: Mapping[str, Any],
    delivery: Delivery,
    result: Result,
    seconds: float,
) -> None:
    """One line per outcome, with the fields bridge.logs.DELIVERY_FIELDS names: ids,
    never the payload (the account id is the job's key field, where it names one)."""
    account = data.get(spec.key) if isinstance(data, Mapping) else None
    log.log(
        level,
        "job %s %s via %s (%s, attempt %d)%s",
        spec.event,
        result.outcome,
        delivery.provider,
        delivery.delivery_id,
        delivery.attempt,
        f": {result.detail}" if result.detail else "",
        extra={
            "job": spec.name,
            "provider": delivery.provider,
            "delivery_id": delivery.delivery_id,
            "account_id": account if isinstance(account, str) else None,
            "attempt": delivery.attempt,
            "outcome": result.outcome.value,
            "duration_ms": round(seconds * 1000, 1),
        },
    )


def _classify(spec: JobSpec[Any], delivery: Delivery, error: Exception) -> Result:
    cause = data_caused(error)
    if cause is not None:
        orig = getattr(error, "orig", None) or error
        return Result(Outcome.FAILED, f"invalid data: {cause}: {first_line(orig)}")
    log_failure(log, error, "job %s raised on %s delivery %s", spec.event, *delivery_ids(delivery))
    return Result(Outcome.RETRY, told_outside(error))


def delivery_ids(delivery: Delivery) -> tuple[str, str]:
    return delivery.provider, delivery.delivery_id


def backoff_seconds(attempt: int, cap: float) -> float:
    """Exponential backoff for retries the body did not time itself: 10 s, 40 s, 160 s..."""
    return float(min(cap, 10 * 4**attempt))
