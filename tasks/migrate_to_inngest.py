"""QStash -> Inngest: re-queue every PENDING scheduled action as an Inngest event.

Each action becomes one `scheduled-action.execute` event with its original
`scheduledFor` and the event id `scheduled-action-<id>`: Inngest starts one run per
id (for 24 hours), so running the migration again, or after an interruption, starts
nothing twice, and the old QStash messages that still arrive meanwhile change nothing
either, because the conditional PENDING -> EXECUTING update lets exactly one delivery
of each action run it.

Rows are streamed oldest first in batches (bounded memory), each batch is one request
to the event API, and each outcome is appended to a JSON-lines audit log as soon as it
is known, so an interrupted run resumes where it stopped: ids the log says were sent
are not sent again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from sqlalchemy import literal, select, update

from bridge.errors import PublishError
from bridge.inngest.client import event_api_origin, inngest_origin_variable
from bridge.inngest.publisher import MAX_EVENTS_PER_REQUEST, MAX_SLEEP
from bridge.publisher import Message
from bridge.publishing import prepare, publisher
from bridge.store.db import session_scope
from config import Provider, Settings
from tasks.models import ActionStatus, ScheduledAction, SchedulingStatus, utcnow
from tasks.scheduled_actions import ExecuteScheduledAction, dedup_id_for, execute_scheduled_action


class MigrationRefused(Exception):
    """The migration cannot start; the message says why and what to do. `exit_code`:
    2 for a configuration that cannot work, 1 for a server that does not answer."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class MigrationReport:
    pending: int = 0  # PENDING rows seen
    sent: int = 0
    already_sent: int = 0  # skipped: the audit log says an earlier run sent them
    beyond_inngest: int = 0  # left to the sweep: further ahead than Inngest can sleep
    failed: int = 0
    requests: int = 0
    dry_run: bool = False


def check_inngest(settings: Settings, timeout: float = 5.0) -> None:
    """Refuse unless Inngest is configured for publishing and its event API answers."""
    if not settings.inngest_publishes:
        raise MigrationRefused(
            "Inngest is not configured for publishing: set INNGEST_EVENT_KEY (and "
            "INNGEST_BASE_URL for a self-hosted server), see `jobbridge config`",
            exit_code=2,
        )
    origin = event_api_origin(settings)
    try:
        httpx.get(origin, timeout=timeout)  # any answer at all means it is reachable
    except httpx.HTTPError as error:
        raise MigrationRefused(
            f"Inngest at {origin} is not reachable ({type(error).__name__}: {error}); "
            f"check {inngest_origin_variable(settings)} and that the server is up",
            exit_code=1,
        ) from None


def sent_ids(audit_log: Path) -> set[str]:
    """Ids an earlier run recorded as sent (a torn last line is ignored)."""
    if not audit_log.exists():
        return set()
    done: set[str] = set()
    with audit_log.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("result") == "sent":
                done.add(str(entry["id"]))
    return done


def pending_actions(
    since: datetime | None, batch_size: int
) -> Iterator[list[tuple[str, datetime]]]:
    """PENDING actions, oldest first, a batch at a time, read with a server-side cursor."""
    statement = (
        select(ScheduledAction.id, ScheduledAction.scheduled_for)
        .where(ScheduledAction.status == ActionStatus.PENDING)
        .order_by(ScheduledAction.scheduled_for, ScheduledAction.id)
        .execution_options(yield_per=batch_size)
    )
    if since is not None:
        statement = statement.where(ScheduledAction.scheduled_for >= since)
    with session_scope() as session:
        for partition in session.execute(statement).partitions(batch_size):
            yield [(row_id, when) for row_id, when in partition]


def migrate_qstash_to_inngest(
    settings: Settings,
    *,
    audit_log: Path,
    batch_size: int = MAX_EVENTS_PER_REQUEST,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] = lambda _: None,
) -> MigrationReport:
    if not 1 <= batch_size <= MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"batch size must be 1..{MAX_EVENTS_PER_REQUEST} (Inngest's limit)")
    if not dry_run:  # a dry run sends nothing: Inngest need not be there yet
        check_inngest(settings)
    report = MigrationReport(dry_run=dry_run)
    skip = sent_ids(audit_log)
    inngest = publisher(Provider.INNGEST, settings)
    log: TextIO | None = None
    if not dry_run:
        audit_log.parent.mkdir(parents=True, exist_ok=True)
        log = audit_log.open("a", encoding="utf-8")
    try:
        for batch in pending_actions(since, batch_size):
            report.pending += len(batch)
            latest = utcnow() + MAX_SLEEP
            todo: list[Message] = []
            for action_id, when in batch:
                if action_id in skip:
                    report.already_sent += 1
                elif when > latest:
                    report.beyond_inngest += 1
                    _write(log, action_id, when, None, "left to the sweep: beyond 366 days")
                else:
                    payload = ExecuteScheduledAction(
                        scheduled_action_id=action_id, scheduled_for=when
                    )
                    todo.append(
                        prepare(
                            execute_scheduled_action,
                            payload,
                            at=when,
                            dedup_id=dedup_id_for(action_id),
                        )
                    )
            if todo and not dry_run:
                _send(inngest, todo, log, report)
            elif todo:  # a dry run: what would go, in the requests it would take
                report.sent += len(todo)
                report.requests += 1
            _sync(log)
            progress(len(batch))
    finally:
        if log is not None:
            log.close()
    return report


def _send(inngest: Any, todo: list[Message], log: TextIO | None, report: MigrationReport) -> None:
    try:
        inngest.publish(todo)
    except PublishError as error:
        report.failed += len(todo)
        for message in todo:
            _write(log, _id(message), message.at, message.dedup_id, f"failed: {error}")
        _sync(log)
        raise
    report.requests += 1
    report.sent += len(todo)
    for message in todo:
        _write(log, _id(message), message.at, message.dedup_id, "sent")
    # Where each action now waits (its event id is our dedup id), in one statement; the
    # sweep's "lost" rule counts from last_enqueued_at.
    with session_scope() as session:
        session.execute(
            update(ScheduledAction)
            .where(
                ScheduledAction.id.in_([_id(message) for message in todo]),
                ScheduledAction.status == ActionStatus.PENDING,
            )
            .values(
                scheduled_provider=Provider.INNGEST.value,
                scheduled_id=literal(f"{dedup_id_for('')}") + ScheduledAction.id,
                scheduling_status=SchedulingStatus.SCHEDULED,
                last_enqueued_at=utcnow(),
            )
        )


def _id(message: Message) -> str:
    return str(message.data["scheduledActionId"])


def _write(
    log: TextIO | None, action_id: str, when: datetime | None, event_id: str | None, result: str
) -> None:
    if log is None:
        return
    entry = {
        "id": action_id,
        "scheduledFor": when.isoformat() if when else None,
        "eventId": event_id,
        "result": result,
    }
    log.write(json.dumps(entry) + "\n")


def _sync(log: TextIO | None) -> None:
    """Once per batch: an interrupted run must find every outcome it already had."""
    if log is not None:
        log.flush()
        os.fsync(log.fileno())
