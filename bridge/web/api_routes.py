"""Internal API routes that start or stop work (x-api-key): not jobs, but job producers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from bridge.web.auth import Unauthorized, authenticate_internal
from config import Settings
from tasks.jobs import bulk_process
from tasks.outcome import PermanentError
from tasks.payload import Id, Timestamp


class StartBulkProcess(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    email_account_id: Id
    start_date: Timestamp
    end_date: Timestamp | None = None
    only_unread: bool = True


class BulkJobStatus(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )

    job_id: str
    status: str


class Refusal(BaseModel):
    detail: str


def add_api_routes(app: FastAPI, settings: Settings) -> None:
    def internal_caller(request: Request) -> None:
        try:
            authenticate_internal(settings, request.headers)
        except Unauthorized as error:
            raise HTTPException(401, str(error)) from None

    router = APIRouter(
        prefix="/api/bulk-process",
        dependencies=[Depends(internal_caller)],
        responses={
            400: {"model": Refusal, "description": "the body is not JSON"},
            401: {"model": Refusal, "description": "no valid x-api-key"},
            404: {"model": Refusal, "description": "no such account or job"},
            409: {"model": Refusal, "description": "the job is not in a state that allows it"},
        },
    )

    @router.post("/start", response_model=BulkJobStatus)
    async def start_bulk_process(body: StartBulkProcess) -> BulkJobStatus:
        for name, value in (("startDate", body.start_date), ("endDate", body.end_date)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, f"{name}: add a timezone, e.g. Z")
        try:
            job = await run_in_threadpool(
                bulk_process.start,
                body.email_account_id,
                body.start_date,
                body.end_date,
                body.only_unread,
            )
        except bulk_process.BulkJobAlreadyOpen as error:
            raise HTTPException(409, str(error)) from None
        except PermanentError as error:
            raise HTTPException(404, str(error)) from None
        return BulkJobStatus(job_id=job.id, status=job.status.value)

    @router.post("/cancel/{job_id}", response_model=BulkJobStatus)
    async def cancel_bulk_process(job_id: Annotated[Id, Path()]) -> BulkJobStatus:
        if not await run_in_threadpool(bulk_process.cancel, job_id):
            job = await run_in_threadpool(bulk_process.get, job_id)
            if job is None:
                raise HTTPException(404, f"no bulk job {job_id}")
            raise HTTPException(409, f"bulk job {job_id} is {job.status.value}, not open")
        return BulkJobStatus(job_id=job_id, status="CANCELLED")

    app.include_router(router)
