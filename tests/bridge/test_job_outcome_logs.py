"""What the execution core logs per delivery: routine answers at DEBUG, the rest at INFO."""

from __future__ import annotations

import logging

import pytest

from bridge.core import run_job
from bridge.outcome import Delivery
from tasks.scheduled_actions import execute_scheduled_action

DELIVERY = Delivery("qstash", "msg_logs", 0)


def test_a_skipped_delivery_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="jobbridge.core"):
        run_job(execute_scheduled_action, {"scheduledActionId": "missing"}, DELIVERY)

    [record] = [r for r in caplog.records if r.name == "jobbridge.core"]
    assert record.levelno == logging.DEBUG
    assert "skipped via qstash (msg_logs, attempt 0)" in record.getMessage()


def test_a_failed_delivery_is_logged_at_info_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="jobbridge.core"):
        run_job(execute_scheduled_action, {"scheduledActionId": 7}, DELIVERY)

    [record] = [r for r in caplog.records if r.name == "jobbridge.core"]
    assert record.levelno == logging.INFO
    assert "failed via qstash" in record.getMessage()
    assert "scheduledActionId" in record.getMessage()
