"""At-least-once delivery, exactly-once effect: duplicates and races leave one effect."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from bridge.core import run_job
from bridge.outcome import Delivery
from tasks import scheduled_actions
from tasks.models import ActionStatus, ActionType, ScheduledAction, utcnow
from tests.conftest import Mailbox
from tests.support import env
from tests.support.actions import insert_action, mark_claimed, set_columns
from tests.support.fake_qstash import QueuedMessage, deliver
from tests.support.wait import wait_for

ROUTE = "/api/scheduled-actions/execute"


def pending_send(mailbox: Mailbox, seconds_ago: int = 1) -> ScheduledAction:
    """A due SEND_EMAIL action that nobody has delivered yet."""
    return insert_action(
        mailbox.account_id,
        ActionType.SEND_EMAIL,
        mailbox.keys[0],
        scheduled_for=utcnow() - timedelta(seconds=seconds_ago),
        to="friend@example.test",
        subject=f"hello {uuid.uuid4().hex[:6]}",
        content="hi",
    )


def action(action_id: str) -> ScheduledAction:
    row = scheduled_actions.get(action_id)
    assert row is not None
    return row


def sent_count(mailbox: Mailbox) -> int:
    return len(mailbox.folder_keys("Sent"))


def qstash_message(action_id: str, message_id: str | None = None) -> QueuedMessage:
    body = json.dumps({"scheduledActionId": action_id}).encode()
    return QueuedMessage(
        message_id or f"msg_{uuid.uuid4().hex}",
        env.WEBHOOK_URL + ROUTE,
        body,
        {"content-type": "application/json"},
    )


def run_concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def start(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(start, calls))


def test_same_qstash_delivery_five_times_runs_once(
    mailbox: Mailbox, web: str, configure: Any
) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    row = pending_send(mailbox)
    message = qstash_message(row.id)
    outcomes = [deliver(message, web).json()["outcome"] for _ in range(5)]

    assert outcomes == ["done", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert sent_count(mailbox) == 1
    assert action(row.id).status is ActionStatus.COMPLETED


def test_five_concurrent_duplicate_messages_have_one_effect(
    mailbox: Mailbox, web: str, configure: Any
) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    row = pending_send(mailbox)
    # QStash may deliver a message more than once, even at the same moment.
    messages = [qstash_message(row.id) for _ in range(5)]
    responses = run_concurrently([partial(deliver, m, web) for m in messages])

    outcomes = [r.json()["outcome"] for r in responses]
    assert outcomes.count("done") == 1
    # The others found it finished (skipped) or still running (retry: 503 Retry-After).
    assert set(outcomes) - {"done"} <= {"skipped", "retry"}
    # QStash retries the 503s later: they find it finished and change nothing.
    again = [deliver(m, web).json()["outcome"] for m, r in zip(messages, responses, strict=True)]
    assert [o for o, first in zip(again, outcomes, strict=True) if first == "retry"] == [
        "skipped"
    ] * outcomes.count("retry")
    assert sent_count(mailbox) == 1


def test_cancel_racing_execute_has_exactly_one_winner(mailbox: Mailbox, configure: Any) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    spec = scheduled_actions.execute_scheduled_action
    rows = [pending_send(mailbox) for _ in range(12)]
    for number, row in enumerate(rows):
        delivery = Delivery("test", f"race-{number}", 0)
        cancelled, result = run_concurrently(
            [
                partial(scheduled_actions.cancel, row.id),
                partial(run_job, spec, {"scheduledActionId": row.id}, delivery),
            ]
        )
        final = action(row.id).status
        if cancelled:
            assert (final, result.outcome.value) == (ActionStatus.CANCELLED, "skipped")
        else:
            assert (final, result.outcome.value) == (ActionStatus.COMPLETED, "done")
    completed = sum(action(r.id).status is ActionStatus.COMPLETED for r in rows)
    assert sent_count(mailbox) == completed


def test_execute_racing_the_sweep_has_one_effect(
    mailbox: Mailbox, web: str, configure: Any
) -> None:
    # The sweep publishes over direct HTTP, so its delivery runs in the web server
    # while this process delivers the same action itself.
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    spec = scheduled_actions.execute_scheduled_action
    rows = [pending_send(mailbox) for _ in range(5)]
    results = run_concurrently(
        [
            scheduled_actions.sweep,
            *[
                partial(run_job, spec, {"scheduledActionId": row.id}, Delivery("test", row.id, 0))
                for row in rows
            ],
        ]
    )

    # Whatever the interleaving, each action ran once: by the sweep's delivery or ours.
    assert results[0].enqueued <= len(rows)
    assert {r.outcome.value for r in results[1:]} <= {"done", "skipped", "retry"}
    assert all(action(r.id).status is ActionStatus.COMPLETED for r in rows)
    assert sent_count(mailbox) == len(rows)


def test_a_redelivered_delivery_takes_over_only_after_the_lease_expired(
    mailbox: Mailbox, configure: Any
) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    payload = {"scheduledActionId": row.id}
    # Attempt 0 of delivery "d1" claimed the row. Celery hands the same message out
    # again (a broker blip), flagged redelivered: that is no proof the first run stopped.
    mark_claimed(row.id, "celery:d1", utcnow() + timedelta(seconds=30))
    while_held = run_job(spec, payload, Delivery("celery", "d1", 1, redelivered=True))
    # The first run's heartbeat stopped (it died) and its lease ran out.
    mark_claimed(row.id, "celery:d1", utcnow() - timedelta(seconds=1))
    once_expired = run_job(spec, payload, Delivery("celery", "d1", 2, redelivered=True))

    assert (while_held.outcome.value, once_expired.outcome.value) == ("retry", "done")
    assert action(row.id).status is ActionStatus.COMPLETED
    assert sent_count(mailbox) == 1


def test_a_long_execution_renews_its_lease_and_keeps_the_row(
    mailbox: Mailbox, configure: Any, monkeypatch: Any
) -> None:
    from tasks.mail.maildir import MaildirProvider

    configure(JOB_PROVIDER="http", INTERNAL_API_URL="http://127.0.0.1:9")
    lease = timedelta(seconds=2)  # renewed every 0.5 s
    monkeypatch.setattr(scheduled_actions, "EXECUTION_LEASE", lease)
    sending, finish = threading.Event(), threading.Event()
    send = MaildirProvider.send

    def slow_send(self: MaildirProvider, mail: Any) -> str:
        sending.set()
        assert finish.wait(timeout=30), "the test never let the send finish"
        return send(self, mail)

    monkeypatch.setattr(MaildirProvider, "send", slow_send)
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    payload = {"scheduledActionId": row.id}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(run_job, spec, payload, Delivery("celery", "d1", 0))
        assert sending.wait(timeout=10)
        claimed_until = action(row.id).lease_expires_at
        assert claimed_until is not None

        def renewed() -> bool:
            expires = action(row.id).lease_expires_at
            assert expires is not None
            return expires > claimed_until + lease

        # Renewed after the lease the claim started with ran out: the row is still this
        # run's once that first lease is over...
        wait_for(
            renewed,
            timeout=10,
            what="the heartbeat to renew the lease",
        )
        other = run_job(spec, payload, Delivery("celery", "d1", 1, redelivered=True))
        finish.set()
        result = first.result(timeout=30)

    # ...so the copy was told to come back, and the action ran once.
    assert (other.outcome.value, result.outcome.value) == ("retry", "done")
    assert other.retry_after is not None
    assert 0 < other.retry_after <= (lease + scheduled_actions.CLAIMED_RETRY_MARGIN).total_seconds()
    final = action(row.id)
    assert (final.status, final.execution_attempts, final.lease_expires_at) == (
        ActionStatus.COMPLETED,
        1,
        None,
    )
    assert sent_count(mailbox) == 1


def test_sweep_puts_expired_executing_rows_back_and_delivers_them(
    mailbox: Mailbox, web: str, configure: Any
) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    row = pending_send(mailbox)
    mark_claimed(row.id, "celery:dead", utcnow() - timedelta(seconds=1))

    report = scheduled_actions.sweep()

    assert (report.reclaimed, report.enqueued) == (1, 1)
    assert action(row.id).status is ActionStatus.COMPLETED
    assert sent_count(mailbox) == 1


def test_direct_http_redelivery_with_same_delivery_id_is_answered_once(
    mailbox: Mailbox, web: str, configure: Any
) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    row = pending_send(mailbox)
    headers = {"x-api-key": env.INTERNAL_API_KEY, "x-jobbridge-delivery-id": "same"}
    body = {"scheduledActionId": row.id}
    first = httpx.post(web + ROUTE, json=body, headers=headers).json()
    second = httpx.post(web + ROUTE, json=body, headers=headers).json()
    assert (first["outcome"], second["outcome"]) == ("done", "duplicate")
    assert sent_count(mailbox) == 1


def test_provider_retry_waits_while_the_first_run_still_holds_the_claim(
    mailbox: Mailbox, configure: Any
) -> None:
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    mark_claimed(row.id, "qstash:msg_1", utcnow() + timedelta(seconds=20))

    # QStash timed out waiting and retried (its fourth attempt): the first run may still
    # be sending.
    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("qstash", "msg_1", 3))

    # It comes back when the first run's lease could have run out, and not later.
    assert result.outcome.value == "retry"
    assert result.retry_after is not None and 20 < result.retry_after <= 21
    assert action(row.id).status is ActionStatus.EXECUTING
    assert sent_count(mailbox) == 0


@pytest.mark.parametrize(("attempt", "wait"), [(0, 10), (1, 20), (2, 40), (3, 80)])
def test_a_delivery_meeting_a_live_run_looks_again_sooner_on_early_attempts(
    mailbox: Mailbox, attempt: int, wait: float
) -> None:
    # The holder usually finishes within seconds; a dead one's lease outlasts the waits
    # of the first attempts only, so the later ones wait longer.
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    mark_claimed(row.id, "qstash:msg_1", utcnow() + timedelta(minutes=2))

    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("qstash", "msg_2", attempt))

    assert result.outcome.value == "retry"
    assert result.retry_after == wait


def test_expired_lease_lets_another_delivery_take_over(mailbox: Mailbox) -> None:
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    mark_claimed(row.id, "qstash:msg_dead", utcnow() - timedelta(seconds=1))

    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("qstash", "msg_2", 0))

    assert result.outcome.value == "done"
    assert sent_count(mailbox) == 1


def test_a_stale_claimant_cannot_finish_a_row_taken_over(mailbox: Mailbox) -> None:
    from tasks.scheduled_action_claims import release

    row = pending_send(mailbox)
    mark_claimed(row.id, "celery:new", utcnow() + timedelta(minutes=15), token="new-token")

    release(row.id, "old-token", status=ActionStatus.FAILED, error="the old run")

    current = action(row.id)
    assert (current.status, current.error) == (ActionStatus.EXECUTING, None)


def test_transient_failures_end_in_failed_after_the_attempt_limit(
    mailbox: Mailbox, monkeypatch: Any
) -> None:
    from tasks.mail.maildir import MaildirProvider

    def broken(self: Any, mail: Any) -> str:
        raise ConnectionError("smtp relay down")

    monkeypatch.setattr(MaildirProvider, "send", broken)
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    outcomes = [
        run_job(spec, {"scheduledActionId": row.id}, Delivery("test", f"d{n}", 0)).outcome.value
        for n in range(scheduled_actions.MAX_EXECUTION_ATTEMPTS)
    ]

    assert outcomes == ["retry"] * (scheduled_actions.MAX_EXECUTION_ATTEMPTS - 1) + ["failed"]
    final = action(row.id)
    assert final.status is ActionStatus.FAILED
    assert final.error is not None
    assert "smtp relay down" in final.error


def test_an_action_whose_runs_keep_dying_is_failed_unrun_past_the_attempt_limit(
    mailbox: Mailbox,
) -> None:
    spec = scheduled_actions.execute_scheduled_action
    row = pending_send(mailbox)
    limit = scheduled_actions.MAX_EXECUTION_ATTEMPTS
    # Claimed that often by runs that died holding it (an out-of-memory kill each time).
    mark_claimed(row.id, "celery:dead", utcnow() - timedelta(seconds=1))
    set_columns(row.id, execution_attempts=limit)

    result = run_job(spec, {"scheduledActionId": row.id}, Delivery("celery", "d6", 0))

    assert result.outcome.value == "failed"
    final = action(row.id)
    assert (final.status, final.error) == (
        ActionStatus.FAILED,
        f"gave up after {limit} executions, the last never finished",
    )
    assert sent_count(mailbox) == 0
