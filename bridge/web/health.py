"""/healthz: can this process reach its database and its broker?"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import text

from config import Settings

log = logging.getLogger("jobbridge.health")


def check_database() -> dict[str, Any]:
    from tasks.db import engine

    started = time.perf_counter()
    try:
        with engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return _failure("database", error)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_broker(settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        if settings.redis_url:
            from tasks import redis_store

            redis_store.client().ping()
        elif not (settings.broker_folder / "queue").is_dir():
            return {"ok": False, "error": "broker folder is missing"}
    except Exception as error:
        return _failure("broker", error)
    kind = "redis" if settings.redis_url else "filesystem"
    return {
        "ok": True,
        "kind": kind,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _failure(what: str, error: Exception) -> dict[str, Any]:
    # /healthz is public: the detail (hosts, users) goes to the log, not the answer.
    log.warning("health check of the %s failed: %s", what, error)
    return {"ok": False, "error": type(error).__name__}
