"""A migration from QStash to Inngest half way through, written straight to the database
for the `/status` page's tests: executions per minute over the last three hours with
QStash's share falling and Inngest's rising, actions still pending on each, a failure
whose error holds markup, and an action stuck EXECUTING."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from bridge.store.db import session_scope
from tasks.models import ActionStatus, ActionType, ScheduledAction, SchedulingStatus, new_id, utcnow

MINUTES = 180
# What the failed action's error says: markup the page must show as text, never run.
HOSTILE_ERROR = "<script>document.title='pwned'</script> IMAP said: <b>mailbox locked</b>"
STUCK_CLAIM = "qstash:msg_stuck_0001"


@dataclass(frozen=True)
class SeededMigration:
    now: datetime
    executed: dict[str, int]  # completed or failed, by provider, over the MINUTES
    first_hour: dict[str, int]  # executed in the first hour of the window, by provider
    last_hour: dict[str, int]  # executed in the last hour, by provider
    pending: dict[str, int]  # PENDING by the provider they were published to
    failed_id: str
    stuck_id: str


def per_minute(minute: int) -> dict[str, int]:
    """Minute 0 is three hours ago: QStash runs 8 a minute then drains to none by the
    last half hour, Inngest rises from none to 8."""
    qstash = max(0, 8 - minute // 19)
    return {"qstash": qstash, "inngest": min(8, minute // 19)}


def _row(status: ActionStatus, when: datetime, **values: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "email_account_id": "acct-status-page",
        "action_type": ActionType.ARCHIVE,
        "message_id": f"<{new_id()}@example.test>",
        "thread_id": "thread-status-page",
        "scheduled_for": when,
        "status": status,
        "scheduling_status": SchedulingStatus.SCHEDULED,
        "created_at": when,
        "updated_at": when,
        **values,
    }


def seed_migration(pending: dict[str, int] | None = None) -> SeededMigration:
    """Rows for the last MINUTES minutes up to now; returns what was written."""
    now = utcnow()
    pending = {"qstash": 3, "inngest": 5} if pending is None else pending
    rows: list[dict[str, Any]] = []
    executed = {"qstash": 0, "inngest": 0}
    first, last = dict(executed), dict(executed)
    for minute in range(MINUTES):
        # Seconds into each minute, so that no row falls outside the window's minutes.
        at = now - timedelta(minutes=MINUTES - 1 - minute)
        for provider, count in per_minute(minute).items():
            executed[provider] += count
            if minute < 60:
                first[provider] += count
            if minute >= MINUTES - 60:
                last[provider] += count
            rows += [
                _row(
                    ActionStatus.COMPLETED,
                    at,
                    executed_at=at,
                    executed_provider=provider,
                    scheduled_provider=provider,
                    claimed_by=f"{provider}:run-{minute}-{n}",
                    execution_attempts=1,
                )
                for n in range(count)
            ]
    for provider, count in pending.items():
        rows += [
            _row(ActionStatus.PENDING, now + timedelta(hours=2), scheduled_provider=provider)
            for _ in range(count)
        ]
    failed = _row(
        ActionStatus.FAILED,
        now - timedelta(minutes=12),
        executed_at=now - timedelta(minutes=12),
        executed_provider="inngest",
        scheduled_provider="inngest",
        execution_attempts=5,
        error=HOSTILE_ERROR,
        action_type=ActionType.LABEL,
        label="Receipts",
    )
    stuck = _row(
        ActionStatus.EXECUTING,
        now - timedelta(minutes=30),
        executed_provider="qstash",
        scheduled_provider="qstash",
        claimed_by=STUCK_CLAIM,
        claim_token="dead-run",
        lease_expires_at=now - timedelta(minutes=25),
        execution_attempts=1,
    )
    rows += [failed, stuck]
    executed["inngest"] += 1  # the failure was executed too, by Inngest, in the last hour
    last["inngest"] += 1
    with session_scope() as session:
        session.execute(insert(ScheduledAction), rows)
    return SeededMigration(
        now=now,
        executed=executed,
        first_hour=first,
        last_hour=last,
        pending={k: v for k, v in pending.items() if v},
        failed_id=failed["id"],
        stuck_id=stuck["id"],
    )
