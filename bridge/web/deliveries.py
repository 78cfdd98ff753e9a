"""One delivery on a job route: the replay guard and the ledger before the job, the
ledger after it, and the job itself in a delivery thread (bridge/threads.py).

With REDIS_URL (production) the token's SET NX and the ledger's EXISTS go to Redis in
one round trip before the job and the ledger's SET in one after it, both from the event
loop, in the batches of bridge/store/tick_batch.py (with the other deliveries' commands
of the same turn): the delivery thread runs the job alone, and only when the job's
early answer (`answer_early`, also on the loop) did not settle the delivery. A thread
that waits on a socket hands the GIL to the loop and has to win it back, which under
load cost more CPU than the round trip itself. Without REDIS_URL (the embedded default)
both live in the database and are asked from the delivery thread (`run_once`).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from bridge import metrics
from bridge.core import delivery_ids, early_result, run_job
from bridge.db_errors import log_failure, told_outside
from bridge.failure_hooks import call_on_failure
from bridge.http.auth import Unauthorized
from bridge.outcome import Delivery, Outcome, Result
from bridge.qstash import replay_guard
from bridge.qstash.auth import SignedToken
from bridge.registry import JobSpec
from bridge.store import ledger, redis_store
from bridge.threads import in_delivery_thread
from config import get_settings

log = logging.getLogger("jobbridge.deliveries")
REPLAYED = "replayed Upstash-Signature: its token was used before"


async def run_delivery(
    spec: JobSpec[Any],
    data: dict[str, Any],
    delivery: Delivery,
    remember: bool,
    token: SignedToken | None = None,
    last_attempt: bool = False,
) -> Result | None:
    """`run_once`, with the Redis round trips and the job's early answer on the event loop."""
    if get_settings().redis_url is None:
        return await in_delivery_thread(
            partial(run_once, spec, data, delivery, remember, token, last_attempt)
        )
    checks = _checks(spec.event, delivery, remember, token)
    if checks and _settled(await redis_store.on_loop(*checks), delivery, remember, token):
        return None
    early = await early_result(spec, data, delivery)
    if early is None:
        result, final = await in_delivery_thread(
            partial(_run_and_settle, spec, data, delivery, last_attempt)
        )
    else:  # done or skipped: no failure hook to run
        result, final = early, _final_outcome(spec, data, delivery, early, last_attempt)
    if remember and final is not None:
        await ledger.record_processed_from_loop(
            delivery.provider, delivery.delivery_id, spec.event, final
        )
    return result


def run_once(
    spec: JobSpec[Any],
    data: dict[str, Any],
    delivery: Delivery,
    remember: bool,
    token: SignedToken | None = None,
    last_attempt: bool = False,
) -> Result | None:
    """Run the job unless this delivery already settled (then None). A QStash token
    used before is a replay: Unauthorized. `remember`: the caller
    named the delivery, so the ledger can answer its repeats. `last_attempt`: the caller
    will not deliver it again after a retry answer (see `_final_outcome`)."""
    if _settled_or_replayed(spec.event, delivery, remember, token):
        return None
    result, final = _run_and_settle(spec, data, delivery, last_attempt)
    if remember and final is not None:
        ledger.record_processed(delivery.provider, delivery.delivery_id, spec.event, final)
    return result


def _run_and_settle(
    spec: JobSpec[Any], data: dict[str, Any], delivery: Delivery, last_attempt: bool
) -> tuple[Result, str | None]:
    """The job's result and what the ledger records for it (None: nothing). A delivery
    that failed for good but whose hook raised (its database is away) has not recorded
    its failure: it is answered as a retry and recorded as nothing, so that the caller
    delivers it again (or, after its last attempt, keeps it in its dead letters)."""
    result = run_job(spec, data, delivery)
    try:
        return result, _final_outcome(spec, data, delivery, result, last_attempt)
    except Exception as error:
        log_failure(
            log, error, "%s on_failure raised for %s %s", spec.event, *delivery_ids(delivery)
        )
        detail = f"{result.detail}; its on_failure hook raised: {told_outside(error)}"
        return Result(Outcome.RETRY, detail), None


def _final_outcome(
    spec: JobSpec[Any], data: dict[str, Any], delivery: Delivery, result: Result, last: bool
) -> str | None:
    """What the ledger records for this delivery, None for nothing. A delivery that
    failed for good (FAILED, or RETRY on the last attempt) of a job with an on_failure
    hook runs the hook first, and is then recorded as failed, a last RETRY included: a
    redelivery of that attempt is answered from the ledger, running neither the job nor
    the hook again (the ledger is the hook's once-guard here). Without a hook a last
    RETRY is recorded as it always was: not at all."""
    failed_for_good = result.outcome is Outcome.FAILED or (result.outcome is Outcome.RETRY and last)
    if failed_for_good and spec.on_failure is not None:
        call_on_failure(
            spec,
            data,
            result.detail,
            provider=delivery.provider,
            delivery_id=delivery.delivery_id,
            remember=False,
        )
        return Outcome.FAILED.value
    return result.outcome.value if result.settles_delivery else None


def _settled_or_replayed(
    event: str, delivery: Delivery, remember: bool, token: SignedToken | None
) -> bool:
    """True when the ledger holds the delivery; raises Unauthorized for a replay."""
    if get_settings().redis_url is not None:
        checks = _checks(event, delivery, remember, token)
        if not checks:
            return False
        pipe = redis_store.client().pipeline(transaction=False)
        for command in checks:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]  # untyped in redis-py
        return _settled(pipe.execute(), delivery, remember, token)
    if token is not None and not replay_guard.first_use(
        token.token_id, delivery.delivery_id, token.expires_at
    ):
        metrics.REPLAYS_REFUSED.inc()
        raise Unauthorized(REPLAYED)
    settled = remember and ledger.already_processed(delivery.provider, delivery.delivery_id, event)
    if settled:
        metrics.LEDGER_DUPLICATES.labels(delivery.provider).inc()
    return settled


def _checks(
    event: str, delivery: Delivery, remember: bool, token: SignedToken | None
) -> list[redis_store.Command]:
    """The token's SET NX and the ledger's EXISTS, as far as there is anything to ask
    (a token, a delivery the caller named)."""
    checks: list[redis_store.Command] = []
    if token is not None:
        checks.append(
            replay_guard.first_use_command(token.token_id, delivery.delivery_id, token.expires_at)
        )
    if remember:
        checks.append(("EXISTS", ledger.ledger_key(delivery.provider, delivery.delivery_id, event)))
    return checks


def _settled(
    answers: list[Any], delivery: Delivery, remember: bool, token: SignedToken | None
) -> bool:
    """Redis's answers to `_checks`: True when the ledger holds the delivery;
    raises Unauthorized for a replay."""
    if token is not None and not replay_guard.is_first(answers[0]):
        metrics.REPLAYS_REFUSED.inc()
        raise Unauthorized(REPLAYED)
    settled = remember and bool(answers[-1])
    if settled:
        metrics.LEDGER_DUPLICATES.labels(delivery.provider).inc()
    return settled
