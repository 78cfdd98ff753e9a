"""The lifecycle events Inngest sends when a run ends badly, as its executor builds them
(inngest/inngest pkg/execution/executor/finalize.go, `functionFinishedData`):

- `inngest/function.failed` when the run failed for good (a NonRetriableError, or its
  retries used up): data {function_id, run_id, event, events, error: {name, message,
  stack?}, _inngest: {status: "Failed"}};
- `inngest/function.cancelled` when it was cancelled, a finish timeout included (the
  executor cancels the run): the same data with status "Cancelled" and, the cancellation
  having no driver response, no `error` (the docs show {"name": "Error", "message":
  "function cancelled"}; the handler accepts either).

Both events take the failed run's id as their own id.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.support.fake_inngest import APP_ID


def run_id() -> str:
    return f"01RUN{uuid.uuid4().hex[:21].upper()}"


def _finished(name: str, fn_id: str, original: dict[str, Any], run: str) -> dict[str, Any]:
    event = {"id": f"01EVT{uuid.uuid4().hex[:21].upper()}", "ts": int(time.time() * 1000)}
    event |= original
    return {
        "name": name,
        "id": run,
        "data": {
            "function_id": f"{APP_ID}-{fn_id}",
            "run_id": run,
            "event": event,
            "events": [event],
        },
    }


def failed_event(
    fn_id: str, original: dict[str, Any], message: str, *, run: str | None = None
) -> dict[str, Any]:
    """What Inngest sends after a run of `fn_id` (its id in the app) failed for good."""
    finished = _finished("inngest/function.failed", fn_id, original, run or run_id())
    finished["data"]["error"] = {"name": "NonRetriableError", "message": message}
    finished["data"]["_inngest"] = {"status": "Failed"}
    return finished


def cancelled_event(
    fn_id: str, original: dict[str, Any], *, run: str | None = None
) -> dict[str, Any]:
    """What Inngest sends after it cancelled a run of `fn_id` (its finish timeout)."""
    finished = _finished("inngest/function.cancelled", fn_id, original, run or run_id())
    finished["data"]["_inngest"] = {"status": "Cancelled"}
    return finished
