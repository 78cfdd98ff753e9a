"""Scheduled actions: schedule, cancel, execute (the job body) and the sweep.

Exactly one effect per action comes from the database, not the providers: every
state change is a conditional UPDATE, and only the delivery that moves a row from
PENDING to EXECUTING performs the action.

This module declares the execute job and the sweep cron, publishes the job, and runs
it. Rows are recorded, read and cancelled in `scheduled_action_records`, claimed and
leased in `scheduled_action_claims`, and found by the sweep in `scheduled_action_sweep`;
their names the rest of the app uses are exported here.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from bridge.errors import DelayUnsupported
from bridge.metrics import sweep_succeeded
from bridge.outcome import Delivery, PermanentError, Result, RetryLater, done, skipped
from bridge.payload import Id, Payload, Timestamp
from bridge.publishing import cancel as cancel_delivery
from bridge.publishing import enqueue
from bridge.receipt import Receipt
from bridge.store.db import exclusive, read_scope, session_scope
from bridge.store.loop_reads import read_one_on_loop
from bridge.store.point_reads import read_one
from tasks.mail.accounts import mail_provider_for
from tasks.mail.actions import MailAction, perform
from tasks.mail.port import MessageNotFound
from tasks.models import (
    ActionStatus,
    ActionType,
    EmailAccount,
    ScheduledAction,
    SchedulingStatus,
    utcnow,
)
from tasks.scheduled_action_claims import (
    CLAIMED_FIRST_RETRY,
    CLAIMED_RETRY_MARGIN,
    HEARTBEATS_PER_LEASE,
    claim,
    heartbeat,
    retry_after,
)
from tasks.scheduled_action_claims import release as _release
from tasks.scheduled_action_records import ActionRefused, get, mark_cancelled, record
from tasks.scheduled_action_sweep import SweepReport, find_work
from tasks.shim import registry

log = logging.getLogger("jobbridge.scheduled_actions")

# How long a claim stands without news from its holder. The holder's heartbeat renews
# it every EXECUTION_LEASE / HEARTBEATS_PER_LEASE while the action runs, so the lease is
# not a bound on how long an execution takes (the job timeout is 5 minutes) but on how
# long a dead holder blocks its action, and on how long a live one may go without
# reaching the database (three missed heartbeats) before another delivery may take over.
# An EXECUTING row whose lease expired belongs to a run that is gone: a delivery takes it
# over, or the sweep puts it back. Read by `execute` at each run, which hands it on.
EXECUTION_LEASE = timedelta(minutes=2)
# Executions that failed transiently, across every delivery and sweep, before the
# action is marked FAILED: without a bound the sweep would retry it forever.
MAX_EXECUTION_ATTEMPTS = 5


class ExecuteScheduledAction(Payload):
    scheduled_action_id: Id
    scheduled_for: Timestamp | None = None


# How soon a delivery comes again that found the row handed back (PENDING again) just
# after its claim failed.
HANDED_BACK_RETRY_SECONDS = 1.0
# What `execute` reads before anything else; built once, as it runs for every delivery.
_STATE_OF = select(ScheduledAction.status, ScheduledAction.scheduled_for).where(
    ScheduledAction.id == bindparam("id")
)


def dedup_id_for(action_id: str) -> str:
    return f"scheduled-action-{action_id}"


def schedule(
    *,
    email_account_id: str,
    action_type: ActionType,
    message_id: str,
    thread_id: str,
    scheduled_for: datetime,
    executed_rule_id: str | None = None,
    action_id: str | None = None,
    verify_message: bool = False,
    **action_fields: Any,
) -> ScheduledAction:
    """Record the action PENDING, then publish it. A failed publish is left to the sweep.

    With `action_id`, scheduling again is a no-op that returns the existing row, so a
    caller that is itself redelivered (a rule applied twice) schedules once.

    Raises ActionRefused, writing nothing, when the type's field is missing (a LABEL
    without `label`) or, with `verify_message`, when the account does not exist or its
    mailbox can be asked and has no such message (executing would complete without
    effect). Callers that just read the message (the rules) need not ask again.
    """
    row, created = record(
        email_account_id=email_account_id,
        action_type=action_type,
        message_id=message_id,
        thread_id=thread_id,
        scheduled_for=scheduled_for,
        executed_rule_id=executed_rule_id,
        action_id=action_id,
        verify_message=verify_message,
        **action_fields,
    )
    if not created:
        return row  # recorded before under this action_id: published then
    publish(row, dedup_id_for(row.id))
    return get(row.id) or row


def cancel(action_id: str) -> bool:
    """PENDING -> CANCELLED; True if this call cancelled it. Then the provider that holds
    the delivery is asked to drop it, best effort: a late delivery of a CANCELLED row is
    skipped anyway. On Inngest that ends the run asleep until the action's time."""
    row = mark_cancelled(action_id)
    if row is None:
        return False
    if row.scheduled_id and row.scheduled_provider:
        receipt = Receipt.of(row.scheduled_provider, row.scheduled_id)
        spec = execute_scheduled_action
        try:
            cancel_delivery(receipt, spec, {str(spec.cancel_key): row.id})
        except Exception as error:
            log.info("provider cancel of %s failed (harmless): %s", row.scheduled_id, error)
    return True


def publish(row: ScheduledAction, dedup_id: str) -> SchedulingStatus:
    """Enqueue the execute job for the row's time and record where it went: SCHEDULED,
    FAILED (with the error), or PENDING (a provider that cannot hold the delay: the
    sweep publishes it when due)."""
    payload = ExecuteScheduledAction(scheduled_action_id=row.id, scheduled_for=row.scheduled_for)
    now = utcnow()
    values: dict[str, Any]
    try:
        receipt = enqueue(
            execute_scheduled_action, payload, at=row.scheduled_for, dedup_id=dedup_id
        )
    except DelayUnsupported as error:
        log.info("action %s waits for the sweep: %s", row.id, error)
        status, values = SchedulingStatus.PENDING, {}
    except Exception as error:
        log.warning("publishing action %s failed; the sweep retries it: %s", row.id, error)
        status, values = SchedulingStatus.FAILED, {"error": f"publish: {error}"}
    else:
        status = SchedulingStatus.SCHEDULED
        values = {
            "scheduled_id": receipt.id,
            "scheduled_provider": receipt.provider.value,
            "last_enqueued_at": now,
            "error": None,
        }
    with session_scope() as session:
        session.execute(
            update(ScheduledAction)
            .where(ScheduledAction.id == row.id)
            .values(scheduling_status=status, **values)
        )
    return status


def _answer_from_state(seen: Any | None, now: datetime) -> Result | None:
    """What `execute` answers from the action's state alone, None when it has work to
    do. Most deliveries that find nothing to do (a duplicate from the other provider, an
    action done or cancelled) end here, after one autocommit read of two columns."""
    if seen is None:
        return skipped("no such scheduled action")
    _wait_until_due(seen.status, seen.scheduled_for, now)
    if seen.status not in (ActionStatus.PENDING, ActionStatus.EXECUTING):
        return skipped(f"action is {seen.status.value}")
    return None


async def answer_early(payload: ExecuteScheduledAction) -> Result | None:
    """`execute`'s answer from the state, read from the event loop (no thread needed)."""
    seen = await read_one_on_loop(_STATE_OF, {"id": payload.scheduled_action_id})
    return _answer_from_state(seen, utcnow())


def execute(payload: ExecuteScheduledAction, delivery: Delivery) -> Result:
    """The job body. Safe to deliver any number of times, from any provider, in any order."""
    now = utcnow()
    lease = EXECUTION_LEASE
    answer = _answer_from_state(read_one(_STATE_OF, {"id": payload.scheduled_action_id}), now)
    if answer is not None:
        return answer
    claimed = claim(payload.scheduled_action_id, delivery, now, lease)
    if claimed is None:
        return _not_claimed(payload.scheduled_action_id, delivery, now, lease)
    row, token = claimed
    attempts = row.execution_attempts
    if attempts > MAX_EXECUTION_ATTEMPTS:
        # Each execution that failed hands the row back; these were taken over from runs
        # that never finished (their process died, out of memory or killed): not again.
        detail = f"gave up after {attempts - 1} executions, the last never finished"
        _release(row.id, token, status=ActionStatus.FAILED, executed_at=utcnow(), error=detail)
        raise PermanentError(detail)
    # From here on the row is this run's: whatever fails hands it back or finishes it.
    try:
        with read_scope() as session:
            account = session.get(EmailAccount, row.email_account_id)
        if account is None:
            raise PermanentError(f"unknown email account {row.email_account_id}")
        with heartbeat(row.id, token, lease):
            created_id = perform(mail_provider_for(account), MailAction.from_scheduled(row))
    except MessageNotFound:
        _release(row.id, token, status=ActionStatus.COMPLETED, executed_at=utcnow())
        return done("message no longer exists; completed without action")
    except PermanentError as error:
        _release(row.id, token, status=ActionStatus.FAILED, executed_at=utcnow(), error=str(error))
        raise
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"
        if attempts >= MAX_EXECUTION_ATTEMPTS:
            _release(row.id, token, status=ActionStatus.FAILED, executed_at=utcnow(), error=detail)
            raise PermanentError(f"gave up after {attempts} executions: {detail}") from error
        # Transient: hand the row back so the retry (or the sweep) can claim it again.
        _release(row.id, token, status=ActionStatus.PENDING, error=detail)
        raise
    _release(
        row.id,
        token,
        status=ActionStatus.COMPLETED,
        executed_at=utcnow(),
        executed_action_id=created_id,
        error=None,
    )
    return done(f"{row.action_type.value} {row.message_id}")


def _not_claimed(action_id: str, delivery: Delivery, now: datetime, lease: timedelta) -> Result:
    """Why the claim found nothing to take, read again: gone, not due (RetryLater),
    held by another run (RetryLater), or finished (skipped)."""
    with read_scope() as session:
        row = session.get(ScheduledAction, action_id)
    if row is None:
        return skipped("no such scheduled action")
    _wait_until_due(row.status, row.scheduled_for, now)
    if row.status is ActionStatus.EXECUTING:
        # Held by another run, maybe of this same delivery: come back when its lease
        # could have run out, to find it finished (skipped), handed back, or abandoned
        # (taken over). Answering "skipped" now would drop this delivery for good if that
        # run fails.
        raise RetryLater(
            "another run is executing it", retry_after(row, now, delivery.attempt, lease)
        )
    if row.status is ActionStatus.PENDING:
        # Handed back by the run that held it since the claim was tried: try again soon.
        raise RetryLater("another run handed it back", HANDED_BACK_RETRY_SECONDS)
    return skipped(f"action is {row.status.value}")


def mark_failed(payload: ExecuteScheduledAction, error: str) -> None:
    """The execute job's on_failure hook: its delivery failed for good (every provider
    retry used up, or a permanent failure), so the action is FAILED with the error
    rather than left for the sweep to try again.

    A conditional UPDATE, so it changes only a row nobody finished or still holds: a
    PENDING one whose time has come (one not yet due was given up early, by a provider
    that could not wait for it: the sweep delivers it when due), or an EXECUTING one
    whose claim's lease ran out (a live holder finishes the row itself). A permanent
    failure the body recorded already (FAILED) is left as it was."""
    now = utcnow()
    with session_scope() as session:
        session.execute(
            update(ScheduledAction)
            .where(
                ScheduledAction.id == payload.scheduled_action_id,
                ScheduledAction.scheduled_for <= now,
                or_(
                    ScheduledAction.status == ActionStatus.PENDING,
                    ScheduledAction.claim_lapsed(now),
                    # A claim without a lease: nobody holds it.
                    and_(
                        ScheduledAction.status == ActionStatus.EXECUTING,
                        ScheduledAction.lease_expires_at.is_(None),
                    ),
                ),
            )
            .values(status=ActionStatus.FAILED, error=error, executed_at=now, lease_expires_at=None)
        )


def _wait_until_due(status: ActionStatus, scheduled_for: datetime, now: datetime) -> None:
    """RetryLater for a PENDING action whose time has not come."""
    if status is ActionStatus.PENDING and scheduled_for > now:
        wait = (scheduled_for - now).total_seconds()
        raise RetryLater(f"not due until {scheduled_for.isoformat()}", retry_after=wait)


def sweep(now: datetime | None = None, limit: int = 1000) -> SweepReport:
    """Put expired EXECUTING rows back, then enqueue due PENDING rows nobody is delivering.

    Beat, the Inngest cron and the cron route may all fire at once: one sweep at a time.
    """
    with exclusive("scheduled-actions.sweep") as ours:
        if not ours:
            return SweepReport(0, 0, 0, ran=False)
        at = now or utcnow()
        found = find_work(at, limit)
        outcomes = Counter(
            # A fresh dedup id: the original one may still be remembered by the provider.
            publish(row, f"{dedup_id_for(row.id)}-sweep-{int(at.timestamp())}")
            for row in found.due
        )
        failed = outcomes[SchedulingStatus.FAILED]
        if not failed:
            sweep_succeeded()
        enqueued = outcomes[SchedulingStatus.SCHEDULED]
        return SweepReport(found.reclaimed, enqueued, found.pruned, failed=failed)


execute_scheduled_action = registry.job(
    event="inbox-zero/scheduled-action.execute",
    route="/api/scheduled-actions/execute",
    # The replaced app published its QStash messages here (its event-to-path mapping
    # turned only the first dot into a slash): still delivered during the switch.
    legacy_routes=("/api/scheduled-action/execute",),
    payload=ExecuteScheduledAction,
    retries=3,
    delayable=True,
    # Cancelling an action also cancels its Inngest run, asleep until the action's time.
    cancel_key="scheduledActionId",
    on_failure=mark_failed,
    answer_early=answer_early,
)(execute)


# The replaced app ran its sweep on this event, each run sending the next one 5 minutes
# ahead; one still in flight at the switch runs the sweep once and sends nothing on.
LEGACY_CLEANUP_EVENT = "inbox-zero/cleanup.scheduled-actions"


@registry.cron(
    name="scheduled-actions.sweep",
    cron="* * * * *",
    route="/api/scheduled-actions/sweep",
    events=(LEGACY_CLEANUP_EVENT,),
)
def sweep_scheduled_actions() -> dict[str, Any]:
    return asdict(sweep())


__all__ = [
    "CLAIMED_FIRST_RETRY",
    "CLAIMED_RETRY_MARGIN",
    "EXECUTION_LEASE",
    "HEARTBEATS_PER_LEASE",
    "LEGACY_CLEANUP_EVENT",
    "MAX_EXECUTION_ATTEMPTS",
    "ActionRefused",
    "ExecuteScheduledAction",
    "SweepReport",
    "cancel",
    "dedup_id_for",
    "execute",
    "execute_scheduled_action",
    "get",
    "mark_failed",
    "publish",
    "schedule",
    "sweep",
    "sweep_scheduled_actions",
]
