"""Scheduled actions: schedule, cancel, execute (the job body) and the sweep.

Exactly one effect per action comes from the database, not the providers: every
state change is a conditional UPDATE, and only the delivery that moves a row from
PENDING to EXECUTING performs the action.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import get_settings
from tasks import deliveries, replay_guard
from tasks.db import exclusive, rows_changed, session_scope
from tasks.mail.accounts import mail_provider_for
from tasks.mail.actions import MailAction, perform
from tasks.mail.port import MessageNotFound
from tasks.models import (
    ActionStatus,
    ActionType,
    EmailAccount,
    ProcessedDelivery,
    ScheduledAction,
    SchedulingStatus,
    SeenSignature,
    new_id,
    utcnow,
)
from tasks.outcome import Delivery, PermanentError, Result, RetryLater, done, skipped
from tasks.payload import Id, Payload, Timestamp
from tasks.registry import cron, job

log = logging.getLogger("jobbridge.scheduled_actions")

# How long a claim stands without news from its holder. The holder's heartbeat renews
# it every EXECUTION_LEASE / HEARTBEATS_PER_LEASE while the action runs, so the lease is
# not a bound on how long an execution takes (the job timeout is 5 minutes) but on how
# long a dead holder blocks its action, and on how long a live one may go without
# reaching the database (three missed heartbeats) before another delivery may take over.
# An EXECUTING row whose lease expired belongs to a run that is gone: a delivery takes it
# over, or the sweep puts it back.
EXECUTION_LEASE = timedelta(minutes=2)
HEARTBEATS_PER_LEASE = 4
# Executions that failed transiently, across every delivery and sweep, before the
# action is marked FAILED: without a bound the sweep would retry it forever.
MAX_EXECUTION_ATTEMPTS = 5
# A delivery that finds the action held by another run comes back soon (a live holder
# is usually done within seconds), then less often: 10, 20, 40, 80 s by its attempt, so
# four attempts outlast a dead holder's lease. Never later than just after that lease
# would expire, the earliest moment it could take over.
CLAIMED_FIRST_RETRY = timedelta(seconds=10)
CLAIMED_RETRY_MARGIN = timedelta(seconds=1)


class ExecuteScheduledAction(Payload):
    scheduled_action_id: Id
    scheduled_for: Timestamp | None = None


def dedup_id_for(action_id: str) -> str:
    return f"scheduled-action-{action_id}"


def _require_aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("scheduled_for must be timezone-aware (UTC); a naive time is ambiguous")
    return when


class ActionRefused(ValueError):
    """schedule() will not record this action; `field` names the argument at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# What performing each action type needs (any one of the fields), as `jobbridge accounts
# import` requires of a rule's action: refused when scheduled, not failed when due.
_NEEDED_FIELDS = {
    ActionType.LABEL: ("label", "label_id"),
    ActionType.MOVE_FOLDER: ("folder_name", "folder_id"),
    ActionType.SEND_EMAIL: ("to",),
    ActionType.FORWARD: ("to",),
}


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
    if action_id is not None and (existing := get(action_id)) is not None:
        return existing
    needed = _NEEDED_FIELDS.get(action_type, ())
    if needed and not any(action_fields.get(name) for name in needed):
        raise ActionRefused(needed[0], f"a {action_type.value} action needs `{needed[0]}`")
    if verify_message:
        with session_scope() as session:
            account = session.get(EmailAccount, email_account_id)
        if account is None:
            raise ActionRefused("email_account_id", f"no email account {email_account_id}")
        try:
            mail = mail_provider_for(account)
        except PermanentError:
            mail = None  # no adapter to ask (yet): the execution will find out
        if mail is not None:
            try:
                mail.get_message(message_id)
            except MessageNotFound:
                raise ActionRefused(
                    "message_id", f"{account.email} has no message {message_id}"
                ) from None
    row = ScheduledAction(
        id=action_id or new_id(),
        email_account_id=email_account_id,
        action_type=action_type,
        message_id=message_id,
        thread_id=thread_id,
        scheduled_for=_require_aware(scheduled_for),
        executed_rule_id=executed_rule_id,
        status=ActionStatus.PENDING,
        scheduling_status=SchedulingStatus.PENDING,
        **action_fields,
    )
    try:
        with session_scope() as session:
            session.add(row)
    except IntegrityError:
        if action_id is None or (existing := get(action_id)) is None:
            raise
        return existing  # a concurrent duplicate created it first
    publish(row, dedup_id_for(row.id))
    return get(row.id) or row


def publish(row: ScheduledAction, dedup_id: str) -> None:
    """Enqueue the execute job for the row's time and record where it went."""
    from bridge.errors import DelayUnsupported
    from bridge.publishing import enqueue  # bridge depends on tasks, not the other way round

    payload = ExecuteScheduledAction(scheduled_action_id=row.id, scheduled_for=row.scheduled_for)
    now = utcnow()
    values: dict[str, Any]
    try:
        receipt = enqueue(
            execute_scheduled_action, payload, at=row.scheduled_for, dedup_id=dedup_id
        )
    except DelayUnsupported as error:
        log.info("action %s waits for the sweep: %s", row.id, error)
        values = {"scheduling_status": SchedulingStatus.PENDING}
    except Exception as error:
        log.warning("publishing action %s failed; the sweep retries it: %s", row.id, error)
        values = {"scheduling_status": SchedulingStatus.FAILED, "error": f"publish: {error}"}
    else:
        values = {
            "scheduling_status": SchedulingStatus.SCHEDULED,
            "scheduled_id": receipt.id,
            "scheduled_provider": receipt.provider.value,
            "last_enqueued_at": now,
            "error": None,
        }
    with session_scope() as session:
        session.execute(update(ScheduledAction).where(ScheduledAction.id == row.id).values(values))


def get(action_id: str) -> ScheduledAction | None:
    with session_scope() as session:
        return session.get(ScheduledAction, action_id)


def cancel(action_id: str) -> bool:
    """PENDING -> CANCELLED; True if this call cancelled it. Provider cancel is best effort."""
    with session_scope() as session:
        won = (
            rows_changed(
                session,
                update(ScheduledAction)
                .where(
                    ScheduledAction.id == action_id,
                    ScheduledAction.status == ActionStatus.PENDING,
                )
                .values(status=ActionStatus.CANCELLED),
            )
            == 1
        )
        row = session.get(ScheduledAction, action_id)
    if won and row is not None and row.scheduled_id and row.scheduled_provider:
        from bridge.publishing import cancel as cancel_delivery
        from bridge.receipt import Receipt

        try:
            cancel_delivery(Receipt.of(row.scheduled_provider, row.scheduled_id))
        except Exception as error:  # the row is CANCELLED: a late delivery is skipped anyway
            log.info("provider cancel of %s failed (harmless): %s", row.scheduled_id, error)
    return won


def _claimant(delivery: Delivery) -> str:
    """Which delivery holds the row, for people reading it; never proof of who is running.

    Two runs of one delivery (a broker blip redelivers a message whose first run goes
    on) share this label, so it decides nothing: each run's own identity is the fresh
    claim token it writes, which alone may renew the lease or finish the row.
    """
    return f"{delivery.provider}:{delivery.delivery_id}"


def _claim(session: Session, row: ScheduledAction, delivery: Delivery, now: datetime) -> str | None:
    """Move the row to EXECUTING for this run; exactly one concurrent caller wins.

    Returns the claim's token, or None when another run holds or finished it. An
    EXECUTING row is taken over only once its lease expired: its holder stopped renewing
    it (see _heartbeat), so it is gone. Nothing else is proof: not a provider's retry
    after a timeout, and not a broker's `redelivered` flag, which a dropped connection
    sets while the first run is still going.
    """
    token = uuid.uuid4().hex
    statement = (
        update(ScheduledAction)
        .where(
            ScheduledAction.id == row.id,
            or_(
                ScheduledAction.status == ActionStatus.PENDING,
                and_(
                    ScheduledAction.status == ActionStatus.EXECUTING,
                    ScheduledAction.lease_expires_at < now,
                ),
            ),
        )
        .values(
            status=ActionStatus.EXECUTING,
            claimed_by=_claimant(delivery),
            claim_attempt=delivery.attempt,
            claim_token=token,
            lease_expires_at=now + EXECUTION_LEASE,
            execution_attempts=ScheduledAction.execution_attempts + 1,
        )
    )
    return token if rows_changed(session, statement) == 1 else None


def _update_claim(action_id: str, token: str, **values: Any) -> bool:
    """Change the EXECUTING row only while this claim is the current one (a fencing
    token); False when it no longer is."""
    with session_scope() as session:
        statement = (
            update(ScheduledAction)
            .where(
                ScheduledAction.id == action_id,
                ScheduledAction.status == ActionStatus.EXECUTING,
                ScheduledAction.claim_token == token,
            )
            .values(**values)
        )
        return rows_changed(session, statement) == 1


def _renew(action_id: str, token: str) -> bool:
    """Push the lease of this claim forward; False when the claim is no longer current."""
    return _update_claim(action_id, token, lease_expires_at=utcnow() + EXECUTION_LEASE)


def _keep_leased(action_id: str, token: str, stop: threading.Event) -> None:
    interval = EXECUTION_LEASE.total_seconds() / HEARTBEATS_PER_LEASE
    while not stop.wait(interval):
        try:
            current = _renew(action_id, token)
        except Exception as error:
            # The database may be away for a moment; the lease outlasts a few misses.
            log.warning("could not renew the lease of action %s: %s", action_id, error)
            continue
        if not current:
            # Finished by this run, or taken over after the lease ran out while this
            # run could not renew it: either way there is nothing left to renew.
            if not stop.is_set():
                log.warning("action %s: this run's claim is no longer current", action_id)
            return


@contextmanager
def _heartbeat(action_id: str, token: str) -> Iterator[None]:
    """Renew the claim's lease from a thread of its own while the block runs.

    A run that dies (SIGKILL, the pool's hard time limit) stops renewing, so its lease
    runs out within EXECUTION_LEASE and another delivery, or the sweep, takes over.
    """
    stop = threading.Event()
    beat = threading.Thread(
        target=_keep_leased, args=(action_id, token, stop), name=f"lease-{action_id}", daemon=True
    )
    beat.start()
    try:
        yield
    finally:
        stop.set()
        # Not waited for long: a renewal still in flight is fenced by status and token,
        # so it cannot touch the row once this run has released it.
        beat.join(timeout=1.0)


def _retry_after(row: ScheduledAction, now: datetime, attempt: int) -> float:
    """Seconds before this delivery looks again: backing off with its attempt, and no
    later than when it could take the row over if the holder stopped renewing."""
    expires = row.lease_expires_at or now
    until_takeover = min(expires - now, EXECUTION_LEASE) + CLAIMED_RETRY_MARGIN
    backoff = CLAIMED_FIRST_RETRY * (1 << min(max(attempt, 0), 6))
    return max(min(until_takeover, backoff), CLAIMED_RETRY_MARGIN).total_seconds()


def _release(action_id: str, token: str, **values: Any) -> None:
    """Leave EXECUTING, but only while this claim is the current one."""
    _update_claim(action_id, token, lease_expires_at=None, **values)


def execute(payload: ExecuteScheduledAction, delivery: Delivery) -> Result:
    """The job body. Safe to deliver any number of times, from any provider, in any order."""
    now = utcnow()
    with session_scope() as session:
        row = session.get(ScheduledAction, payload.scheduled_action_id)
        if row is None:
            return skipped("no such scheduled action")
        if row.status is ActionStatus.PENDING and row.scheduled_for > now:
            wait = (row.scheduled_for - now).total_seconds()
            raise RetryLater(f"not due until {row.scheduled_for.isoformat()}", retry_after=wait)
        token = _claim(session, row, delivery, now)
        if token is None:
            session.refresh(row)
            if row.status is ActionStatus.EXECUTING:
                # Held by another run, maybe of this same delivery: come back when its
                # lease could have run out, to find it finished (skipped), handed back,
                # or abandoned (taken over). Answering "skipped" now would drop this
                # delivery for good if that run fails.
                raise RetryLater(
                    "another run is executing it", _retry_after(row, now, delivery.attempt)
                )
            return skipped(f"action is {row.status.value}")
        session.refresh(row)  # the claim's own counts, whatever the session cached
        attempts = row.execution_attempts
        account = session.get(EmailAccount, row.email_account_id)
    try:
        if account is None:
            raise PermanentError(f"unknown email account {row.email_account_id}")
        with _heartbeat(row.id, token):
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


@dataclass(frozen=True)
class SweepReport:
    reclaimed: int
    enqueued: int
    pruned_deliveries: int
    ran: bool = True  # False: another sweep held the lock, so this one did nothing


def sweep(now: datetime | None = None, limit: int = 1000) -> SweepReport:
    """Put expired EXECUTING rows back, then enqueue due PENDING rows nobody is delivering.

    Beat, the Inngest cron and the cron route may all fire at once: one sweep at a time.
    """
    with exclusive("scheduled-actions.sweep") as ours:
        if not ours:
            return SweepReport(0, 0, 0, ran=False)
        return _sweep(now or utcnow(), limit)


def _sweep(now: datetime, limit: int) -> SweepReport:
    grace = timedelta(seconds=get_settings().sweep_grace_seconds)
    with session_scope() as session:
        reclaimed = rows_changed(
            session,
            update(ScheduledAction)
            .where(
                ScheduledAction.status == ActionStatus.EXECUTING,
                ScheduledAction.lease_expires_at < now,
            )
            .values(
                status=ActionStatus.PENDING,
                lease_expires_at=None,
                claimed_by=None,
                claim_attempt=None,
                claim_token=None,
                scheduling_status=SchedulingStatus.PENDING,
            ),
        )
        lost = and_(
            ScheduledAction.scheduled_for < now - grace,
            or_(
                ScheduledAction.last_enqueued_at.is_(None),
                ScheduledAction.last_enqueued_at < now - grace,
            ),
        )
        due = session.scalars(
            select(ScheduledAction)
            .where(
                ScheduledAction.status == ActionStatus.PENDING,
                ScheduledAction.scheduled_for <= now,
                or_(ScheduledAction.scheduling_status != SchedulingStatus.SCHEDULED, lost),
            )
            .order_by(ScheduledAction.scheduled_for)
            .limit(limit)
        ).all()
        pruned = rows_changed(
            session,
            delete(ProcessedDelivery).where(
                ProcessedDelivery.finished_at < now - deliveries.RETENTION
            ),
        ) + rows_changed(
            session,
            delete(SeenSignature).where(
                SeenSignature.expires_at
                < now - timedelta(seconds=replay_guard.CLOCK_MARGIN_SECONDS)
            ),
        )
    for row in due:
        # A fresh dedup id: the original one may still be remembered by the provider.
        publish(row, f"{dedup_id_for(row.id)}-sweep-{int(now.timestamp())}")
    return SweepReport(reclaimed, len(due), pruned)


execute_scheduled_action = job(
    event="inbox-zero/scheduled-action.execute",
    route="/api/scheduled-actions/execute",
    payload=ExecuteScheduledAction,
    retries=3,
    delayable=True,
)(execute)


@cron(name="scheduled-actions.sweep", cron="* * * * *", route="/api/scheduled-actions/sweep")
def sweep_scheduled_actions() -> dict[str, Any]:
    return asdict(sweep())
