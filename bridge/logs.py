"""Log lines: text, or one JSON object a line with LOG_FORMAT=json (for a log pipeline).

Each delivery's outcome is one line from the execution core (bridge/core.py) carrying
the fields in DELIVERY_FIELDS: job, provider, delivery id, account id, attempt, outcome
and duration. Never the payload or the job's data: ids only. Routine outcomes (done,
skipped) are at DEBUG, thousands a second in a burst (the metrics count them); retry
and failed at INFO.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DELIVERY_FIELDS = (
    "job",
    "provider",
    "delivery_id",
    "account_id",
    "attempt",
    "outcome",
    "duration_ms",
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the delivery's fields where
    the record has them, and the traceback as `error` where it has one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in DELIVERY_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """The web process's root logger, unless something configured it before."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(log_format))
    logging.basicConfig(level=level, handlers=[handler])
