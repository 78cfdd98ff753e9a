"""hello: the smallest app on the shim, one job and one cron, and nothing from `tasks`.

Run it from the repository root (JOBBRIDGE_APP names it; the default is the inbox app):

    export JOBBRIDGE_APP=examples.hello PYTHONPATH=.
    .venv/bin/jobbridge dev                          # web, worker, beat and Flower
    .venv/bin/jobbridge enqueue greeting.send --data '{"name": "Ada"}'

A greeting lands in $HELLO_OUTBOX (default DATA_DIR/hello), read when the job runs:
importing this module reads no environment, as `celery -A` and the CLI need.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Annotated, Any

from pydantic import StringConstraints

from bridge import Delivery, Payload, Registry, Result, done, skipped
from bridge.celery.app import celery_app
from bridge.store.tables import create_shim_tables
from config import Settings, get_settings

registry = Registry(event_prefix="hello/")


def outbox() -> Path:
    """HELLO_OUTBOX, else `hello` under DATA_DIR, where the rest of the stack keeps its
    files."""
    given = os.environ.get("HELLO_OUTBOX")
    return Path(given) if given else get_settings().data_dir / "hello"


class Greet(Payload):
    # It names a file: words, spaces and dashes only, so never a path like ../x.
    name: Annotated[str, StringConstraints(pattern=r"^\w[\w -]{0,39}$")]


@registry.job(event="hello/greeting.send", route="/api/hello/greet", payload=Greet)
def send_greeting(payload: Greet, delivery: Delivery) -> Result:
    """Greet each name once: `<outbox>/<name>.txt` is written whole or not at all, and a
    redelivery (or a second greeting.send for the name) finds it there and skips."""
    folder = outbox()
    folder.mkdir(parents=True, exist_ok=True)
    draft = folder / f".{uuid.uuid4().hex}.draft"
    draft.write_text(f"Hello, {payload.name}!\n", encoding="utf-8")
    try:
        os.link(draft, folder / f"{payload.name}.txt")  # atomic; never replaces a file
    except FileExistsError:
        return skipped(f"{payload.name} was greeted before")
    finally:
        draft.unlink()
    return done(f"greeted {payload.name} ({delivery.provider})")


@registry.cron(name="hello.tick", cron="* * * * *", route="/api/hello/tick")
def count_greetings() -> dict[str, Any]:
    """Every minute (Celery beat, Inngest, or any scheduler calling the route)."""
    return {"greetings": len(list(outbox().glob("*.txt")))}


def prepare_dev(settings: Settings) -> list[str]:
    """Before `jobbridge dev` (and any first start without Redis): hello has no database
    of its own, so it only needs the shim's tables for its ledger and deferred jobs."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_shim_tables(settings.sqlalchemy_url)
    return ['Try it: jobbridge enqueue greeting.send --data \'{"name": "Ada"}\'']


# After every declaration above: Celery makes the tasks when the app is finalized.
app = celery_app(registry)
