"""/healthz: can this process reach its database and its broker?"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from config import Settings


def check_database() -> dict[str, Any]:
    from tasks.db import engine

    started = time.perf_counter()
    try:
        with engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_broker(settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        if settings.redis_url:
            from tasks import redis_store

            redis_store.client().ping()
        elif not (settings.broker_folder / "queue").is_dir():
            return {"ok": False, "error": f"broker folder {settings.broker_folder} is missing"}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    kind = "redis" if settings.redis_url else "filesystem"
    return {
        "ok": True,
        "kind": kind,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
