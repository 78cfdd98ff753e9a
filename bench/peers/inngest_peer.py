"""A bare inngest-py app: one one-shot function, signed mode, served by FastAPI.

A peer of bench/receivers.py, served as `uvicorn inngest_peer:app --workers 2` from
bench/.peers/venv with INNGEST_SIGNING_KEY set: `is_production=True`, so every call's
X-Inngest-Signature is verified by the SDK. The function is synchronous like jobbridge's
(the SDK runs it in its thread pool) and does nothing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import inngest
import inngest.fast_api
from fastapi import FastAPI

APP_ID = "bench-peer"
EVENT = "bench-peer/scheduled-action.execute"
FN_ID = "scheduled-action-execute"  # called as fnId=<APP_ID>-<FN_ID>

client = inngest.Inngest(
    app_id=APP_ID,
    signing_key=os.environ["INNGEST_SIGNING_KEY"],
    is_production=True,
    # Never called by a one-shot call; loopback so that nothing could leave the machine.
    api_base_url=os.environ.get("INNGEST_BASE_URL"),
    event_api_base_url=os.environ.get("INNGEST_BASE_URL"),
    logger=logging.getLogger("bench.inngest"),
)


@client.create_function(fn_id=FN_ID, trigger=inngest.TriggerEvent(event=EVENT), retries=3)
def execute(ctx: inngest.ContextSync) -> dict[str, Any]:
    return {"outcome": "skipped", "detail": "no-op"}


app = FastAPI()
inngest.fast_api.serve(
    app,
    client,
    [execute],
    enable_unauthed_sync=False,
    serve_origin=os.environ.get("INNGEST_SERVE_ORIGIN"),
)
