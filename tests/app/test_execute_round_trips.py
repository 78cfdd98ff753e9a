"""What executing a due action asks of the database: four statements, each committed on
its own (the state read, the claim with the row it returns, the account, the release),
and no BEGIN or COMMIT. Each round trip costs about as much client CPU as a short
query, and this is the job the migration drains by the thousand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from bridge.core import run_job
from bridge.outcome import Delivery
from bridge.store.db import engine
from tasks.models import ActionStatus, ActionType, utcnow
from tasks.scheduled_actions import execute_scheduled_action, get
from tests.conftest import Mailbox
from tests.support.actions import insert_action


class Statements:
    def __init__(self) -> None:
        self.sql: list[str] = []
        self.commits = 0


@pytest.fixture
def statements() -> Iterator[Statements]:
    seen, bound = Statements(), engine()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.sql.append(statement.split(None, 1)[0].upper())

    def on_commit(_conn: Any) -> None:
        seen.commits += 1

    event.listen(bound, "before_cursor_execute", on_execute)
    event.listen(bound, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(bound, "before_cursor_execute", on_execute)
        event.remove(bound, "commit", on_commit)


def test_executing_a_due_action_takes_four_statements_and_no_transaction(
    mailbox: Mailbox, statements: Statements
) -> None:
    row = insert_action(
        mailbox.account_id,
        ActionType.ARCHIVE,
        mailbox.keys[0],
        scheduled_for=utcnow() - timedelta(seconds=1),
    )
    statements.sql.clear()
    statements.commits = 0
    delivery = Delivery(provider="qstash", delivery_id="msg_round_trips", attempt=0)

    result = run_job(execute_scheduled_action, {"scheduledActionId": row.id}, delivery)

    assert result.outcome.value == "done", result.detail
    assert statements.sql == ["SELECT", "UPDATE", "SELECT", "UPDATE"]
    assert statements.commits == 0
    final = get(row.id)
    assert final is not None
    assert final.status is ActionStatus.COMPLETED
