"""`@job` and `@cron`: the only place a job's name, event, route, payload and limits are written.

Everything else (the Celery task, the Inngest function, the FastAPI route, the
publishers' destinations, the docs table) is derived from these registries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from tasks.outcome import Delivery, Result
from tasks.payload import Payload

P = TypeVar("P", bound=Payload)
JobBody = Callable[[P, Delivery], Result]

EVENT_PREFIX = "inbox-zero/"
_EVENT = re.compile(r"^inbox-zero/[a-z0-9-]+(\.[a-z0-9-]+)+$")
_ROUTE = re.compile(r"^/api(/[a-z0-9-]+)+$")
_CRON = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")


class JobDeclarationError(TypeError):
    """A @job or @cron declaration is wrong: raised at import, never in production."""


@dataclass(frozen=True)
class Throttle:
    limit: int
    period_seconds: int


@dataclass(frozen=True)
class JobSpec(Generic[P]):
    event: str
    route: str
    payload: type[P]
    body: JobBody[P]
    retries: int = 3
    timeout_seconds: int = 300
    concurrency: int | None = None  # per key, at most this many running at once
    throttle: Throttle | None = None  # per key, at most limit starts per period
    key: str = "emailAccountId"  # the payload field the per-key limits apply to
    delayable: bool = False  # payload carries `scheduledFor`; deliver no earlier
    task: Any = field(default=None, compare=False, repr=False)  # the Celery task

    @property
    def name(self) -> str:
        return self.event.removeprefix(EVENT_PREFIX)

    @property
    def fn_id(self) -> str:
        """Inngest function id (the server registers `<app_id>-<fn_id>`)."""
        return self.name.replace(".", "-")

    @property
    def limited_by_key(self) -> bool:
        return self.concurrency is not None or self.throttle is not None


@dataclass(frozen=True)
class CronSpec:
    name: str
    cron: str  # five fields, UTC: Celery beat, Inngest TriggerCron
    route: str  # POST with `Authorization: Bearer $CRON_SECRET`, for any other scheduler
    body: Callable[[], dict[str, Any]]
    task: Any = field(default=None, compare=False, repr=False)

    @property
    def fn_id(self) -> str:
        return self.name.replace(".", "-")


JOBS: dict[str, JobSpec[Any]] = {}
CRONS: dict[str, CronSpec] = {}
_ROUTES: dict[str, str] = {}


def _claim_route(route: str, owner: str) -> None:
    if not _ROUTE.match(route):
        raise JobDeclarationError(f"{owner}: route {route!r} must look like /api/words-and/dashes")
    if route in _ROUTES and _ROUTES[route] != owner:
        raise JobDeclarationError(f"{owner}: route {route} already belongs to {_ROUTES[route]}")
    _ROUTES[route] = owner


def _validate_job(spec: JobSpec[Any]) -> None:
    where = spec.event
    if not _EVENT.match(spec.event):
        raise JobDeclarationError(f"event {spec.event!r} must look like 'inbox-zero/area.action'")
    if spec.event in JOBS:
        raise JobDeclarationError(f"{where}: declared twice")
    if not (isinstance(spec.payload, type) and issubclass(spec.payload, Payload)):
        raise JobDeclarationError(f"{where}: payload must be a tasks.payload.Payload subclass")
    if not 0 <= spec.retries <= 20:
        raise JobDeclarationError(f"{where}: retries must be 0..20 (Inngest's maximum is 20)")
    if spec.timeout_seconds <= 0:
        raise JobDeclarationError(f"{where}: timeout_seconds must be positive")
    fields = spec.payload.model_fields
    if spec.limited_by_key and spec.key not in {f.alias or n for n, f in fields.items()}:
        raise JobDeclarationError(f"{where}: per-key limits need a payload field {spec.key!r}")
    if spec.delayable and "scheduled_for" not in fields:
        raise JobDeclarationError(f"{where}: delayable jobs need a `scheduled_for` payload field")
    if spec.concurrency is not None and spec.concurrency < 1:
        raise JobDeclarationError(f"{where}: concurrency must be at least 1")
    if spec.throttle is not None and (spec.throttle.limit < 1 or spec.throttle.period_seconds < 1):
        raise JobDeclarationError(f"{where}: throttle needs a limit and a period of at least 1")
    _claim_route(spec.route, where)


def job(
    *,
    event: str,
    route: str,
    payload: type[P],
    retries: int = 3,
    timeout_seconds: int = 300,
    concurrency: int | None = None,
    throttle: Throttle | None = None,
    key: str = "emailAccountId",
    delayable: bool = False,
) -> Callable[[JobBody[P]], JobSpec[P]]:
    """Declare a job. Keyword-only: an unknown option is a TypeError at import."""

    def declare(body: JobBody[P]) -> JobSpec[P]:
        from tasks.celery_tasks import celery_task_for_job

        spec: JobSpec[P] = JobSpec(
            event=event,
            route=route,
            payload=payload,
            body=body,
            retries=retries,
            timeout_seconds=timeout_seconds,
            concurrency=concurrency,
            throttle=throttle,
            key=key,
            delayable=delayable,
        )
        _validate_job(spec)
        spec = replace(spec, task=celery_task_for_job(spec))
        JOBS[spec.event] = spec
        return spec

    return declare


def cron(*, name: str, cron: str, route: str) -> Callable[[Callable[[], dict[str, Any]]], CronSpec]:
    """Declare a periodic task: Celery beat, an Inngest cron function, and a cron route."""

    def declare(body: Callable[[], dict[str, Any]]) -> CronSpec:
        from tasks.celery_tasks import celery_task_for_cron

        if not _CRON.match(cron):
            raise JobDeclarationError(f"{name}: cron {cron!r} needs five fields")
        if name in CRONS:
            raise JobDeclarationError(f"{name}: declared twice")
        _claim_route(route, name)
        spec = CronSpec(name=name, cron=cron, route=route, body=body)
        spec = replace(spec, task=celery_task_for_cron(spec))
        CRONS[name] = spec
        return spec

    return declare


def job_for(name_or_event: str) -> JobSpec[Any]:
    """Look a job up by its event (`inbox-zero/x.y`) or short name (`x.y`)."""
    event = (
        name_or_event if name_or_event.startswith(EVENT_PREFIX) else EVENT_PREFIX + name_or_event
    )
    try:
        return JOBS[event]
    except KeyError:
        known = ", ".join(sorted(spec.name for spec in JOBS.values()))
        raise KeyError(f"unknown job {name_or_event!r}; known jobs: {known}") from None
