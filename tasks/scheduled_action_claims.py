"""Claims on a scheduled action: which run may perform it, for how long, and how it
hands the row back.

A run claims the row by moving it to EXECUTING with a fresh token (a conditional
UPDATE, so one concurrent caller wins) and a lease; a heartbeat thread renews the lease
while the action runs, and every later change is fenced by the token, so a run whose
claim was taken over can no longer touch the row. The lease's length is the caller's
(`tasks.scheduled_actions.EXECUTION_LEASE`), handed to each function that needs it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import BindParameter, Update, and_, bindparam, or_, update
from sqlalchemy.sql.dml import ReturningUpdate

from bridge.outcome import Delivery
from bridge.store.db import autocommit_session, rows_changed
from tasks.models import ActionStatus, ScheduledAction, utcnow

log = logging.getLogger("jobbridge.scheduled_actions")

# The holder's heartbeat renews the lease this many times per lease, so it may miss
# three renewals (the database away for a moment) before another run may take over.
HEARTBEATS_PER_LEASE = 4
# A delivery that finds the action held by another run comes back soon (a live holder
# is usually done within seconds), then less often: 10, 20, 40, 80 s by its attempt, so
# four attempts outlast a dead holder's lease. Never later than just after that lease
# would expire, the earliest moment it could take over.
CLAIMED_FIRST_RETRY = timedelta(seconds=10)
CLAIMED_RETRY_MARGIN = timedelta(seconds=1)


def _claimant(delivery: Delivery) -> str:
    """Which delivery holds the row, for people reading it; never proof of who is running.

    Two runs of one delivery (a broker blip redelivers a message whose first run goes
    on) share this label, so it decides nothing: each run's own identity is the fresh
    claim token it writes, which alone may renew the lease or finish the row.
    """
    return f"{delivery.provider}:{delivery.delivery_id}"


def claim(
    action_id: str, delivery: Delivery, now: datetime, lease: timedelta
) -> tuple[ScheduledAction, str] | None:
    """Move the row to EXECUTING for this run; exactly one concurrent caller wins.

    Returns the row as claimed (its counts included) and the claim's token, or None when
    the row is missing, PENDING but not due, or held or finished by another run. An
    EXECUTING row is taken over only once its lease expired: its holder stopped renewing
    it (see heartbeat), so it is gone. Nothing else is proof: not a provider's retry
    after a timeout, and not a broker's `redelivered` flag, which a dropped connection
    sets while the first run is still going. One statement, committed on its own.
    """
    token = uuid.uuid4().hex
    values = {
        "action_id": action_id,
        "now": now,
        "claimed_by": _claimant(delivery),
        "claim_attempt": delivery.attempt,
        "provider": delivery.provider,
        "token": token,
        "lease_expires_at": now + lease,
    }
    with autocommit_session() as session:
        row = session.scalars(_claim_statement(), values).first()
    return None if row is None else (row, token)


# Built once, with its values as parameters (see `claim`): building an ORM UPDATE for
# each delivery cost more CPU than running it.
@lru_cache(maxsize=1)
def _claim_statement() -> ReturningUpdate[ScheduledAction]:
    now: BindParameter[datetime] = bindparam("now")
    return (
        update(ScheduledAction)
        .where(
            ScheduledAction.id == bindparam("action_id"),
            or_(
                and_(
                    ScheduledAction.status == ActionStatus.PENDING,
                    ScheduledAction.scheduled_for <= now,
                ),
                ScheduledAction.claim_lapsed(now),
            ),
        )
        .values(
            status=ActionStatus.EXECUTING,
            claimed_by=bindparam("claimed_by"),
            claim_attempt=bindparam("claim_attempt"),
            # Only this claim may finish the row, so this is the provider that runs it.
            executed_provider=bindparam("provider"),
            claim_token=bindparam("token"),
            lease_expires_at=bindparam("lease_expires_at"),
            execution_attempts=ScheduledAction.execution_attempts + 1,
        )
        .returning(ScheduledAction)
        .execution_options(synchronize_session=False)
    )


def _update_claim(action_id: str, token: str, **values: Any) -> bool:
    """Change the EXECUTING row only while this claim is the current one (a fencing
    token); False when it no longer is. One statement, committed on its own."""
    parameters = {f"new_{name}": value for name, value in values.items()}
    with autocommit_session() as session:
        statement = _fenced_update(tuple(sorted(values)))
        changed = rows_changed(
            session, statement, {"action_id": action_id, "token": token, **parameters}
        )
    return changed == 1


@lru_cache(maxsize=16)
def _fenced_update(columns: tuple[str, ...]) -> Update:
    """The fenced UPDATE setting these columns, each from the parameter `new_<column>`."""
    return (
        update(ScheduledAction)
        .where(
            ScheduledAction.id == bindparam("action_id"),
            ScheduledAction.status == ActionStatus.EXECUTING,
            ScheduledAction.claim_token == bindparam("token"),
        )
        .values({column: bindparam(f"new_{column}") for column in columns})
        .execution_options(synchronize_session=False)
    )


def _renew(action_id: str, token: str, lease: timedelta) -> bool:
    """Push the lease of this claim forward; False when the claim is no longer current."""
    return _update_claim(action_id, token, lease_expires_at=utcnow() + lease)


def _keep_leased(action_id: str, token: str, lease: timedelta, stop: threading.Event) -> None:
    interval = lease.total_seconds() / HEARTBEATS_PER_LEASE
    while not stop.wait(interval):
        try:
            current = _renew(action_id, token, lease)
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
def heartbeat(action_id: str, token: str, lease: timedelta) -> Iterator[None]:
    """Renew the claim's lease from a thread of its own while the block runs.

    A run that dies (SIGKILL, the pool's hard time limit) stops renewing, so its lease
    runs out within `lease` and another delivery, or the sweep, takes over.
    """
    stop = threading.Event()
    beat = threading.Thread(
        target=_keep_leased,
        args=(action_id, token, lease, stop),
        name=f"lease-{action_id}",
        daemon=True,
    )
    beat.start()
    try:
        yield
    finally:
        stop.set()
        # Not waited for long: a renewal still in flight is fenced by status and token,
        # so it cannot touch the row once this run has released it.
        beat.join(timeout=1.0)


def retry_after(row: ScheduledAction, now: datetime, attempt: int, lease: timedelta) -> float:
    """Seconds before a delivery that found the row held looks again: backing off with
    its attempt, and no later than when it could take the row over if the holder stopped
    renewing."""
    expires = row.lease_expires_at or now
    until_takeover = min(expires - now, lease) + CLAIMED_RETRY_MARGIN
    backoff = CLAIMED_FIRST_RETRY * (1 << min(max(attempt, 0), 6))
    return max(min(until_takeover, backoff), CLAIMED_RETRY_MARGIN).total_seconds()


def release(action_id: str, token: str, **values: Any) -> None:
    """Leave EXECUTING, but only while this claim is the current one."""
    _update_claim(action_id, token, lease_expires_at=None, **values)
