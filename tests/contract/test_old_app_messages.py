"""Messages the replaced app left in flight are understood, whichever way they arrive.

For every job, the old app's message (tests/support/old_app.py) is delivered as QStash
delivers it (signed, to the job's route and to each path the old app published to), as
the old app's last-resort call posted it (`<route>/simple` with x-api-key), and as
Inngest runs it (the job's function). None is refused as invalid, and each ends in the
state the contract matrix expects of the job: the effect the old app meant.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tasks import JOBS, scheduled_actions
from tasks.models import ActionStatus, ActionType
from tasks.scheduled_actions import LEGACY_CLEANUP_EVENT, sweep_scheduled_actions
from tests.conftest import Mailbox
from tests.contract.test_contract_matrix import CASES
from tests.support import env
from tests.support.actions import insert_action
from tests.support.fake_inngest import run_function
from tests.support.fake_qstash import QueuedMessage, deliver_until_final, mint_signature
from tests.support.old_app import OLD_MESSAGES, iso_z
from tests.support.wait import wait_for


def test_every_job_has_an_old_app_message() -> None:
    assert set(OLD_MESSAGES) == set(JOBS)


def signed_paths() -> list[tuple[str, str]]:
    """(event, path) for every path QStash may deliver a job to: route and aliases."""
    return [
        (event, path)
        for event in sorted(JOBS)
        for path in (JOBS[event].route, *JOBS[event].aliases)
        if not path.endswith("/simple")
    ]


def settle(event: str, mailbox: Mailbox) -> None:
    case = CASES[event]
    expected = case.expected(mailbox)
    settled = wait_for(
        lambda: case.state(mailbox) == expected, timeout=60, what=f"old {event} to settle"
    )
    assert settled


def old_message(event: str, mailbox: Mailbox) -> dict[str, Any]:
    return OLD_MESSAGES[event](mailbox, CASES[event].setup(mailbox))


@pytest.mark.parametrize(("event", "path"), signed_paths())
def test_old_message_from_qstash_has_the_jobs_effect(
    event: str, path: str, mailbox: Mailbox, web: str, worker: Any
) -> None:
    body = json.dumps(old_message(event, mailbox)).encode()
    message = QueuedMessage(
        message_id=f"msg_old_{uuid.uuid4().hex}",
        url=env.WEBHOOK_URL + path,
        body=body,
        headers={"content-type": "application/json"},
    )

    response = deliver_until_final(message, web)

    assert response.status_code == 200, response.text
    settle(event, mailbox)


@pytest.mark.parametrize("event", sorted(JOBS))
def test_old_last_resort_call_to_simple_has_the_jobs_effect(
    event: str, mailbox: Mailbox, web: str, worker: Any
) -> None:
    response = httpx.post(
        f"{web}{JOBS[event].route}/simple",
        json=old_message(event, mailbox),
        headers={"x-api-key": env.INTERNAL_API_KEY},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    settle(event, mailbox)


@pytest.mark.parametrize("event", sorted(JOBS))
def test_old_inngest_event_has_the_jobs_effect(
    event: str, mailbox: Mailbox, web: str, worker: Any
) -> None:
    sent = {"name": event, "data": old_message(event, mailbox), "id": uuid.uuid4().hex}

    run = run_function(web, JOBS[event].fn_id, sent)

    assert run.status == 200, run.output
    settle(event, mailbox)


@pytest.mark.parametrize("event", sorted(JOBS))
def test_simple_alias_refuses_a_wrong_key_as_the_route_does(event: str, web: str) -> None:
    for path in (JOBS[event].route, JOBS[event].route + "/simple"):
        response = httpx.post(web + path, json={}, headers={"x-api-key": "wrong"}, timeout=30)
        assert response.status_code == 401, path


def test_a_signature_for_the_route_does_not_open_its_alias(web: str) -> None:
    route = JOBS["inbox-zero/resend.summary"].route
    response = httpx.post(
        f"{web}{route}/simple",
        content=b"{}",
        headers={
            "Content-Type": "application/json",
            "Upstash-Message-Id": "msg_moved",
            "Upstash-Signature": mint_signature(b"{}", env.WEBHOOK_URL + route),
        },
        timeout=30,
    )
    assert response.status_code == 401


# The old app's self-repeating cleanup event -----------------------------------------------


def test_old_cleanup_event_runs_the_sweep_once_and_sends_nothing_on(
    mailbox: Mailbox, web: str, worker: Any
) -> None:
    row = insert_action(mailbox.account_id, ActionType.ARCHIVE, mailbox.keys[0])
    sent = {
        "name": LEGACY_CLEANUP_EVENT,
        "data": {"scheduledBy": "cleanup-cycle", "timestamp": iso_z(0)},
        "id": uuid.uuid4().hex,
    }

    run = run_function(web, sweep_scheduled_actions.fn_id, sent)

    # One request answered 200: no step ran, so no event was sent to repeat the cleanup.
    assert (run.responses, run.output["enqueued"]) == ([200], 1)
    done = wait_for(
        lambda: scheduled_actions.get(row.id).status is ActionStatus.COMPLETED,  # type: ignore[union-attr]
        timeout=60,
        what="the swept action to run",
    )
    assert done
