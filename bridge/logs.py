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


# uvicorn's own formats (uvicorn.config.LOGGING_CONFIG), which its loggers keep unless
# the server was started with a log configuration that sets others (one that keeps
# these, with uvicorn's formatter classes, is taken to want the defaults).
_UVICORN_FORMATS = frozenset(
    {
        "%(levelprefix)s %(message)s",
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
    }
)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """The web process's root logger, unless something configured it before; and
    uvicorn's own lines (the worker's start and stop, one access line a request) in the
    same format, where uvicorn's default formats would print them otherwise: with
    LOG_FORMAT=json, every line of a web worker is JSON. uvicorn's format also cost a
    request three times as much CPU as this one (it copies each record twice)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    from uvicorn.logging import AccessFormatter, DefaultFormatter  # the web's only

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for uvicorns in logging.getLogger(name).handlers:
            formatter = uvicorns.formatter
            if type(formatter) in (DefaultFormatter, AccessFormatter) and (
                getattr(formatter, "_fmt", None) in _UVICORN_FORMATS
            ):
                uvicorns.setFormatter(formatter_for(log_format))
