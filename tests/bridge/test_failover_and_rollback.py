"""Provider chain at work: failover on a failed publish, rollback by removing variables."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from inngest._internal.net import sign_request

from bridge import PublishError, enqueue
from config import Provider
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, ScheduledAction, SchedulingStatus, utcnow
from tests.conftest import Mailbox
from tests.support import env
from tests.support.fake_inngest import FakeInngest
from tests.support.fake_qstash import FakeQStash
from tests.support.wire import wire

JOB = "scheduled-action.execute"
PAYLOAD = {"scheduledActionId": "a1"}
BOTH = {**env.INNGEST_ENV, **env.QSTASH_ENV}
NO_INNGEST = dict.fromkeys(env.INNGEST_ENV)
NO_QSTASH = dict.fromkeys(env.QSTASH_ENV)


def action(action_id: str) -> ScheduledAction:
    row = scheduled_actions.get(action_id)
    assert row is not None
    return row


def test_failover_moves_a_failed_inngest_publish_to_qstash_with_the_same_dedup_id(
    router: Any, configure: Any
) -> None:
    configure(**BOTH, JOB_FAILOVER="true")
    inngest, qstash = FakeInngest(router, down=True), FakeQStash(router)

    receipt = enqueue(*wire(JOB, PAYLOAD), dedup_id="scheduled-action-a1")

    assert receipt.provider is Provider.QSTASH
    assert inngest.requests >= 1 and inngest.events == []
    (message,) = qstash.messages
    assert message.headers["upstash-deduplication-id"] == "scheduled-action-a1"
    assert receipt.id == message.message_id


def test_without_failover_a_failed_publish_raises(router: Any, configure: Any) -> None:
    configure(**BOTH, JOB_FAILOVER="false")
    FakeInngest(router, down=True)
    qstash = FakeQStash(router)

    with pytest.raises(PublishError, match="inngest"):
        enqueue(*wire(JOB, PAYLOAD), dedup_id="scheduled-action-a1")
    assert qstash.messages == []


def test_failed_schedule_leaves_the_action_for_the_sweep(
    router: Any, configure: Any, mailbox: Mailbox
) -> None:
    configure(**env.INNGEST_ENV)
    inngest = FakeInngest(router, down=True)
    row = scheduled_actions.schedule(
        email_account_id=mailbox.account_id,
        action_type=ActionType.ARCHIVE,
        message_id=mailbox.keys[0],
        thread_id=mailbox.keys[0],
        scheduled_for=utcnow() + timedelta(minutes=5),
    )
    assert (row.status, row.scheduling_status) == (ActionStatus.PENDING, SchedulingStatus.FAILED)
    assert "inngest" in (row.error or "")

    inngest.down = False
    second = timedelta(seconds=1)
    assert scheduled_actions.sweep(now=row.scheduled_for - second).enqueued == 0  # not due yet
    assert scheduled_actions.sweep(now=row.scheduled_for + second).enqueued == 1

    (event,) = inngest.events
    assert event["data"]["scheduledActionId"] == row.id
    assert action(row.id).scheduling_status is SchedulingStatus.SCHEDULED


def test_removing_inngest_variables_rolls_back_to_qstash_then_celery(
    router: Any, configure: Any
) -> None:
    configure(**BOTH)
    inngest, qstash = FakeInngest(router), FakeQStash(router)
    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.INNGEST

    configure(**NO_INNGEST)
    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.QSTASH

    configure(**NO_QSTASH)
    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.CELERY
    assert (len(inngest.events), len(qstash.messages)) == (1, 1)


def test_explicit_provider_wins_over_auto_order(router: Any, configure: Any) -> None:
    configure(**BOTH, JOB_PROVIDER="qstash")
    FakeInngest(router)
    qstash = FakeQStash(router)
    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.QSTASH
    assert len(qstash.messages) == 1


def test_invalid_payload_publishes_nothing_anywhere(router: Any, configure: Any) -> None:
    from bridge import InvalidPayload

    configure(**BOTH, JOB_FAILOVER="true")
    inngest, qstash = FakeInngest(router), FakeQStash(router)
    with pytest.raises(InvalidPayload, match="scheduledActionId"):
        enqueue(*wire(JOB, {"scheduledActionID": "typo"}))
    assert (inngest.requests, qstash.messages) == (0, [])


def test_rollback_keeps_serving_the_runs_inngest_already_has(router: Any, configure: Any) -> None:
    from fastapi.testclient import TestClient

    from bridge.web.factory import create_app

    settings = configure(**{**BOTH, "INNGEST_EVENT_KEY": None})  # the rollback: stop publishing
    FakeInngest(router)
    qstash = FakeQStash(router)

    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.QSTASH
    assert len(qstash.messages) == 1
    with TestClient(create_app(settings)) as client:
        body = FakeInngest.request_body(
            {"name": "inbox-zero/scheduled-action.execute", "data": {"scheduledActionId": "x"}},
            "01RUNROLLBACK",
            0,
            {},
            [],
        )
        raw = json.dumps(body).encode()
        response = client.post(
            "/api/inngest",
            params={"fnId": "inbox-zero-scheduled-action-execute", "stepId": "step"},
            content=raw,
            headers={
                "X-Inngest-Signature": str(sign_request(raw, env.INNGEST_SIGNING_KEY)),
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 200 and response.json()["outcome"] == "skipped"


def test_rollback_by_job_provider_publishes_to_qstash(router: Any, configure: Any) -> None:
    configure(**BOTH, JOB_PROVIDER="qstash")
    inngest, qstash = FakeInngest(router), FakeQStash(router)
    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.QSTASH
    assert (inngest.events, len(qstash.messages)) == ([], 1)


def test_rollback_drill_removing_every_inngest_variable_loses_nothing(
    router: Any, configure: Any, mailbox: Mailbox, web: str
) -> None:
    from datetime import timedelta

    from tests.support.fake_qstash import deliver_until_final

    configure(**BOTH)
    inngest, qstash = FakeInngest(router), FakeQStash(router)
    row = scheduled_actions.schedule(
        email_account_id=mailbox.account_id,
        action_type=ActionType.ARCHIVE,
        message_id=mailbox.keys[0],
        thread_id=mailbox.keys[0],
        scheduled_for=utcnow() - timedelta(seconds=1),
    )
    assert (row.scheduled_provider, len(inngest.events)) == ("inngest", 1)

    configure(**NO_INNGEST)  # the rollback: every INNGEST_* removed, nothing else
    assert enqueue(*wire(JOB, PAYLOAD)).provider is Provider.QSTASH

    # Inngest can no longer reach the app, so its run never comes. Once the action is
    # overdue by the grace period, the sweep hands it to QStash, which delivers it.
    grace = timedelta(seconds=600)
    assert row.last_enqueued_at is not None
    later = max(row.scheduled_for, row.last_enqueued_at) + grace + timedelta(seconds=1)
    report = scheduled_actions.sweep(now=later)
    assert report.enqueued == 1
    rescheduled = [m for m in qstash.messages if row.id.encode() in m.body]
    assert len(rescheduled) == 1
    assert deliver_until_final(rescheduled[0], web).status_code == 200
    assert action(row.id).status is ActionStatus.COMPLETED
    assert mailbox.folder_keys("Archive") == {mailbox.keys[0]}
