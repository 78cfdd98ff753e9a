"""A bare FastAPI QStash receiver: `qstash.Receiver` and a pydantic model, job a no-op.

A peer of bench/receivers.py, served as `uvicorn fastapi_receiver:app --workers 2` from
bench/.peers/venv. It is what any FastAPI app receiving QStash writes at least: verify
the signature over the public URL and the body, validate the payload, answer. No replay
guard, no delivery ledger, no database.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from qstash import Receiver

ROUTE = "/api/scheduled-actions/execute"
SIGNED_URL = os.environ["WEBHOOK_URL"] + ROUTE  # QStash signs the public URL it called

receiver = Receiver(
    current_signing_key=os.environ["QSTASH_CURRENT_SIGNING_KEY"],
    next_signing_key=os.environ["QSTASH_NEXT_SIGNING_KEY"],
)
app = FastAPI()


class ExecuteScheduledAction(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    scheduled_action_id: str = Field(alias="scheduledActionId", min_length=1)


@app.post(ROUTE)
async def execute(request: Request) -> JSONResponse:
    body = await request.body()
    try:
        receiver.verify(
            signature=request.headers.get("upstash-signature", ""),
            body=body.decode(),
            url=SIGNED_URL,
        )
    except Exception as error:  # the SDK raises SignatureError, KeyError and friends
        return JSONResponse({"error": f"invalid signature: {error}"}, 401)
    try:
        ExecuteScheduledAction.model_validate_json(body)
    except ValidationError as error:
        return JSONResponse({"error": str(error)}, 400)
    return JSONResponse({"outcome": "skipped", "detail": "no-op"})
