"""Internal API routes that start or stop work (x-api-key): not jobs, but job producers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from starlette._utils import get_route_path  # how the router itself reads the path
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.bodies import Refused, read_capped, replay
from bridge.db_errors import STORE_ERRORS
from bridge.errors import PublishError
from bridge.http.auth import Unauthorized, verify_api_key
from bridge.outcome import PermanentError
from bridge.payload import Id, Timestamp
from bridge.web.responses import UNAVAILABLE_RETRY_AFTER_SECONDS
from config import Settings
from tasks.jobs import bulk_process


class StartBulkProcess(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    email_account_id: Id
    start_date: Timestamp
    end_date: Timestamp | None = None
    only_unread: bool = True
    force_reprocess: bool = False  # apply the rules again to messages with a result

    # Refused as FastAPI refuses any field: 422, its detail naming the field.
    @field_validator("start_date")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("add a timezone, e.g. Z")
        return value

    @field_validator("end_date")
    @classmethod
    def _aware_and_after_the_start(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        if value is None:
            return None
        cls._aware(value)
        start = info.data.get("start_date")  # absent when it was refused
        if start is not None and value < start:
            raise ValueError("before startDate: the window would be empty")
        return value


class BulkJobStatus(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )

    job_id: str
    status: str


class Refusal(BaseModel):
    detail: str


PREFIX = "/api/bulk-process"
# Its job routes (/fetcher, /worker) share the prefix and take QStash's signature.
INTERNAL_PATHS = (f"{PREFIX}/start", f"{PREFIX}/cancel/")
# This app's job ids are uuid hex: in a URL path, nothing that needs escaping.
JobIdInPath = Annotated[str, Path(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
MAX_BODY_BYTES = 64 * 1024  # a start request is a few fields


class InternalCallersOnly:
    """Plain ASGI middleware: the internal routes check the key before reading a byte of
    the body, and read at most MAX_BODY_BYTES of it (FastAPI would parse any body first)."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not get_route_path(scope).startswith(INTERNAL_PATHS):
            await self.app(scope, receive, send)
            return
        try:
            verify_api_key(self.settings, Headers(scope=scope))
            body = await read_capped(scope, receive, MAX_BODY_BYTES)
        except (Unauthorized, Refused) as error:
            status = error.status if isinstance(error, Refused) else 401
            await JSONResponse({"detail": str(error)}, status)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def add_routes(app: FastAPI, settings: Settings) -> None:
    """The internal API that starts and cancels bulk runs (bridge.apps: `add_routes`)."""
    app.add_middleware(InternalCallersOnly, settings=settings)
    router = APIRouter(
        prefix=PREFIX,
        responses={
            400: {"model": Refusal, "description": "the body is not JSON"},
            401: {"model": Refusal, "description": "no valid x-api-key"},
            413: {"model": Refusal, "description": f"body over {MAX_BODY_BYTES} bytes"},
            404: {"model": Refusal, "description": "no such account or job"},
            409: {"model": Refusal, "description": "the job is not in a state that allows it"},
            503: {"model": Refusal, "description": "the database or the provider is away; retry"},
        },
    )

    @router.post("/start", response_model=BulkJobStatus)
    async def start_bulk_process(body: StartBulkProcess) -> BulkJobStatus:
        try:
            job = await run_in_threadpool(
                bulk_process.start,
                body.email_account_id,
                body.start_date,
                body.end_date,
                body.only_unread,
                body.force_reprocess,
            )
        except bulk_process.BulkJobAlreadyOpen as error:
            raise HTTPException(409, str(error)) from None
        except PermanentError as error:
            raise HTTPException(404, str(error)) from None
        except PublishError as error:
            # The run was closed as FAILED: a retry starts a new one, unless the provider
            # refused the message itself (then 502: retrying the same cannot help).
            detail = (
                f"could not queue the run's first page ({error.provider.value} did not take it)"
            )
            if error.permanent:
                raise HTTPException(502, detail) from None
            raise _unavailable(detail) from None
        except STORE_ERRORS as error:
            raise _unavailable(f"the database is unavailable ({type(error).__name__})") from None
        return BulkJobStatus(job_id=job.id, status=job.status.value)

    @router.post("/cancel/{job_id}", response_model=BulkJobStatus)
    async def cancel_bulk_process(job_id: JobIdInPath) -> BulkJobStatus:
        try:
            cancelled = await run_in_threadpool(bulk_process.cancel, job_id)
            job = None if cancelled else await run_in_threadpool(bulk_process.get, job_id)
        except STORE_ERRORS as error:
            raise _unavailable(f"the database is unavailable ({type(error).__name__})") from None
        if not cancelled:
            if job is None:
                raise HTTPException(404, f"no bulk job {job_id}")
            raise HTTPException(409, f"bulk job {job_id} is {job.status.value}, not open")
        return BulkJobStatus(job_id=job_id, status="CANCELLED")

    app.include_router(router)


def _unavailable(detail: str) -> HTTPException:
    """503 with Retry-After, naming what failed by its kind (the log has the rest)."""
    return HTTPException(
        503, f"{detail}; retry later", headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}
    )
