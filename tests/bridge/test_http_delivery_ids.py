"""Direct HTTP sends a job's dedup id as its delivery id, which a route takes up to 255
characters (what the ledger holds): a longer one goes as a stable id of that length."""

from __future__ import annotations

from typing import Any

from bridge.http.wire import delivery_id_for
from bridge.publishing import enqueue
from bridge.store.columns import EXTERNAL_LENGTH
from tasks.scheduled_actions import ExecuteScheduledAction, execute_scheduled_action


def test_a_dedup_id_a_route_takes_is_the_delivery_id() -> None:
    assert delivery_id_for("scheduled-action-a1") == "scheduled-action-a1"


def test_a_longer_dedup_id_is_always_the_same_shorter_delivery_id() -> None:
    long = "bulk-job-msg-" + "x" * 300

    assert len(delivery_id_for(long)) == EXTERNAL_LENGTH
    assert delivery_id_for(long) == delivery_id_for(long)
    assert delivery_id_for(long) != delivery_id_for(long + "y")


def test_a_job_with_a_long_dedup_id_is_delivered_over_direct_http(web: str, configure: Any) -> None:
    configure(JOB_PROVIDER="http", INTERNAL_API_URL=web)
    payload = ExecuteScheduledAction(scheduled_action_id="no-such-action")

    receipt = enqueue(execute_scheduled_action, payload, dedup_id="d" * 400)

    assert (receipt.provider.value, len(receipt.id)) == ("http", EXTERNAL_LENGTH)
