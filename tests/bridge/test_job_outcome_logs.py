"""What the execution core logs per delivery: routine answers at DEBUG, the rest at INFO;
one line each, as JSON with LOG_FORMAT=json, with the delivery's ids and never its data."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from celery.signals import after_setup_logger

from bridge.core import run_job
from bridge.logs import JsonFormatter
from bridge.outcome import Delivery
from config import ConfigError
from tasks.jobs.digest import add_to_digest
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


def json_line(record: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_an_outcome_as_json_carries_the_deliverys_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="jobbridge.core"):
        run_job(execute_scheduled_action, {"scheduledActionId": "missing"}, DELIVERY)

    [record] = [r for r in caplog.records if r.name == "jobbridge.core"]
    line = json_line(record)
    assert {k: line[k] for k in ("job", "provider", "delivery_id", "attempt", "outcome")} == {
        "job": "scheduled-action.execute",
        "provider": "qstash",
        "delivery_id": "msg_logs",
        "attempt": 0,
        "outcome": "skipped",
    }
    assert isinstance(line["duration_ms"], float) and line["level"] == "debug"


def test_an_outcome_as_json_names_the_account_but_carries_no_message_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message = {"id": "m1", "threadId": "t1", "from": "a@example.test", "subject": "Hi"}
    message["content"] = "the private body of the mail"
    with caplog.at_level(logging.DEBUG, logger="jobbridge.core"):
        run_job(add_to_digest, {"emailAccountId": "acct-x", "message": message}, DELIVERY)

    [record] = [r for r in caplog.records if r.name == "jobbridge.core"]
    text = JsonFormatter().format(record)
    assert json.loads(text)["account_id"] == "acct-x"
    assert "private body" not in text and "Hi" not in json.loads(text)["message"]


def test_log_format_json_gives_the_celery_workers_handlers_the_json_formatter(
    configure: Any,
) -> None:
    configure(LOG_FORMAT="json")
    logger = logging.getLogger("test-celery-worker")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        after_setup_logger.send(sender=None, logger=logger, loglevel=logging.INFO)
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        logger.removeHandler(handler)


def test_an_unknown_log_format_is_refused_naming_the_variable(configure: Any) -> None:
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        configure(LOG_FORMAT="xml")
