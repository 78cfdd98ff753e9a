"""An app's jobs and crons: `@registry.job` and `@registry.cron` record frozen specs.

A declaration is the only place a job's name, event, route, payload and limits are
written, and declaring has no side effect beyond the record: the Celery tasks are made
when the Celery app is finalized (bridge.celery), the Inngest functions and the routes
when the web app is built (bridge.web). A wrong option fails at import, never later.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bridge.outcome import Delivery, Result
from bridge.payload import Payload

P = TypeVar("P", bound=Payload)
JobBody = Callable[[P, Delivery], Result]
# Runs many deliveries of the job at once (payloads of one key value, in the order
# published) and answers one Result per payload, in the same order; see `batch_body`.
BatchBody = Callable[[Sequence[P], Delivery], list[Result]]
# Called once when a delivery of the job has failed for good (a permanent failure, or
# its last attempt failed), with the validated payload and what went wrong.
FailureHook = Callable[[P, str], None]
# What a job can answer from the event loop before any thread runs it: a done or skipped
# Result, or None when the body has to run (see bridge/core.py, `early_result`).
EarlyAnswer = Callable[[P], Awaitable[Result | None]]
CronBody = Callable[[], dict[str, Any]]

_PREFIX = re.compile(r"^[a-z0-9-]+/$")
_NAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
_ROUTE = re.compile(r"^/api(/[a-z0-9-]+)+$")
# Inngest's endpoint (bridge/inngest/serve.py): no job or cron route may take it.
INNGEST_PATH = "/api/inngest"
_FLOW_KEY = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_CRON = re.compile(r"^\S+ \S+ \S+ \S+ \S+$")


class JobDeclarationError(TypeError):
    """A @job or @cron declaration is wrong: raised at import, never in production."""


@dataclass(frozen=True)
class Throttle:
    limit: int
    period_seconds: int


@dataclass(frozen=True)
class JobSpec(Generic[P]):
    event: str  # `<prefix>area.action`, what Inngest triggers on
    name: str  # `area.action`: the event without the app's prefix
    route: str  # the POST route QStash and direct HTTP call
    payload: type[P]
    body: JobBody[P]
    retries: int = 3
    timeout_seconds: int = 300
    concurrency: int | None = None  # per key, at most this many running at once
    throttle: Throttle | None = None  # per key, at most limit starts per period
    key: str = "emailAccountId"  # the payload field the per-key limits apply to
    delayable: bool = False  # payload carries `scheduledFor`; deliver no earlier
    # More paths that serve the same job, with the same auth and answers: where another
    # app's producers (the one this app replaces) still post it. Never published to.
    aliases: tuple[str, ...] = ()
    # The QStash flow-control key is this prefix + the key field's value (default
    # `<fn_id>.`): one the replaced app used, so that its messages still in QStash and
    # ours share one limit.
    flow_key_prefix: str | None = None
    # The payload field (its wire name) that says which deliveries a cancellation is for:
    # cancelling publishes `cancel_event` with that field, and Inngest cancels the runs
    # (asleep until their time, say) whose event carries the same value.
    cancel_key: str | None = None
    # Run once when a delivery has failed for good, whichever provider delivered it
    # (see bridge/failure_hooks.py for when each provider calls it).
    on_failure: FailureHook[P] | None = None
    # Asked first by the web routes and Inngest functions, on the event loop: deliveries
    # it answers (done, skipped) need no thread (see bridge/core.py, `early_result`).
    answer_early: EarlyAnswer[P] | None = None
    # Celery only: a body that takes the payloads of one key value published together
    # (`enqueue_many`) as one message, for jobs published by the thousand whose
    # per-message cost is mostly what the messages share (bridge/celery/batches.py).
    batch_body: BatchBody[P] | None = None

    @property
    def fn_id(self) -> str:
        """Inngest function id (the server registers `<app_id>-<fn_id>`)."""
        return self.name.replace(".", "-")

    @property
    def cancel_event(self) -> str | None:
        return None if self.cancel_key is None else f"{self.event}.cancelled"

    @property
    def limited_by_key(self) -> bool:
        return self.concurrency is not None or self.throttle is not None

    def flow_key(self, data: dict[str, Any]) -> str:
        """The key a message's per-key limits apply to (QStash's flow-control key)."""
        prefix = self.fn_id + "." if self.flow_key_prefix is None else self.flow_key_prefix
        return f"{prefix}{data[self.key]}"


@dataclass(frozen=True)
class CronSpec:
    name: str
    cron: str  # five fields, UTC: Celery beat, Inngest TriggerCron
    route: str  # POST with `Authorization: Bearer $CRON_SECRET`, for any other scheduler
    body: CronBody
    # Inngest events that also run it once each: another app's way of triggering the same
    # work (an event it sent itself to repeat), still in flight when this app took over.
    events: tuple[str, ...] = ()

    @property
    def fn_id(self) -> str:
        return self.name.replace(".", "-")


class Registry:
    """The jobs and crons of one app, keyed by event and by name."""

    def __init__(self, *, event_prefix: str, alias_suffixes: tuple[str, ...] = ()) -> None:
        """`alias_suffixes`: each job is also served at its route (and legacy routes) plus
        each suffix, e.g. "/simple" where the replaced app's last-resort calls went."""
        if not _PREFIX.fullmatch(event_prefix):
            raise JobDeclarationError(
                f"event_prefix {event_prefix!r} must look like 'my-app/' (lowercase, dashes)"
            )
        for suffix in alias_suffixes:
            if not _ROUTE.fullmatch("/api" + suffix):
                raise JobDeclarationError(f"alias suffix {suffix!r} must look like /words-and")
        self.event_prefix = event_prefix
        self.alias_suffixes = alias_suffixes
        self.jobs: dict[str, JobSpec[Any]] = {}
        self.crons: dict[str, CronSpec] = {}
        self._routes: dict[str, str] = {}
        self._closed = False

    def close(self) -> None:
        """No more declarations: an app built from the registry (Celery tasks, beat
        schedule, Inngest functions, routes) has read it, and a later job would be served
        by some of them and not others."""
        self._closed = True

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise JobDeclarationError(
                f"{what}: declared after an app was built from the registry; declare every "
                "job and cron when the app's modules are imported, before celery_app() or "
                "the web app"
            )

    def job(
        self,
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
        legacy_routes: tuple[str, ...] = (),
        flow_key_prefix: str | None = None,
        cancel_key: str | None = None,
        on_failure: FailureHook[P] | None = None,
        answer_early: EarlyAnswer[P] | None = None,
        batch_body: BatchBody[P] | None = None,
    ) -> Callable[[JobBody[P]], JobSpec[P]]:
        """Declare a job. Keyword-only: an unknown option is a TypeError at import.

        `legacy_routes`: other paths the replaced app posted this job to; they and the
        route get the registry's alias suffixes too. `on_failure(payload, error)`: run
        once when a delivery has failed for good (bridge/failure_hooks.py).
        `answer_early(payload)`: a coroutine the web routes and Inngest functions await
        before the body, which may answer done or skipped without a thread.
        `batch_body(payloads, delivery)`: on Celery, runs the payloads of one key value
        that one `enqueue_many` published, as one message; every other provider runs
        `body` for each (bridge/celery/batches.py)."""
        paths = (route, *legacy_routes)
        aliases = (
            *legacy_routes,
            *(path + suffix for path in paths for suffix in self.alias_suffixes),
        )

        def declare(body: JobBody[P]) -> JobSpec[P]:
            spec: JobSpec[P] = JobSpec(
                event=event,
                name=self._name_of(event),
                route=route,
                payload=payload,
                body=body,
                retries=retries,
                timeout_seconds=timeout_seconds,
                concurrency=concurrency,
                throttle=throttle,
                key=key,
                delayable=delayable,
                aliases=aliases,
                flow_key_prefix=flow_key_prefix,
                cancel_key=cancel_key,
                on_failure=on_failure,
                answer_early=answer_early,
                batch_body=batch_body,
            )
            validate_job(spec)
            if spec.event in self.jobs:
                raise JobDeclarationError(f"{spec.event}: declared twice")
            if any(spec.event in cron.events for cron in self.crons.values()):
                raise JobDeclarationError(f"{spec.event}: already triggers a cron")
            for path in (spec.route, *spec.aliases):
                self._check_route(path, spec.event)
            self._check_open(spec.event)
            for path in (spec.route, *spec.aliases):
                self._routes[path] = spec.event
            self.jobs[spec.event] = spec
            return spec

        return declare

    def cron(
        self, *, name: str, cron: str, route: str, events: tuple[str, ...] = ()
    ) -> Callable[[CronBody], CronSpec]:
        """Declare a periodic task: Celery beat, an Inngest cron function, and a cron route.
        Each of `events` also runs it once (its Inngest function triggers on them too)."""

        def declare(body: CronBody) -> CronSpec:
            spec = CronSpec(name=name, cron=cron, route=route, body=body, events=events)
            self.add_cron(spec)
            return spec

        return declare

    def add_cron(self, spec: CronSpec) -> None:
        """Record a cron declared elsewhere (the shim's own); the same spec twice is one."""
        if self.crons.get(spec.name) is spec:
            return
        if not _CRON.fullmatch(spec.cron):
            raise JobDeclarationError(f"{spec.name}: cron {spec.cron!r} needs five fields")
        if spec.name in self.crons:
            raise JobDeclarationError(f"{spec.name}: declared twice")
        for event in spec.events:
            self._name_of(event)
            if event in self.jobs or any(event in cron.events for cron in self.crons.values()):
                raise JobDeclarationError(f"{spec.name}: event {event} already triggers another")
        self._check_route(spec.route, spec.name)
        self._check_open(spec.name)
        self._routes[spec.route] = spec.name
        self.crons[spec.name] = spec

    def job_for(self, name_or_event: str) -> JobSpec[Any]:
        """Look a job up by its event (`<prefix>x.y`) or short name (`x.y`)."""
        event = (
            name_or_event
            if name_or_event.startswith(self.event_prefix)
            else self.event_prefix + name_or_event
        )
        try:
            return self.jobs[event]
        except KeyError:
            known = ", ".join(sorted(spec.name for spec in self.jobs.values()))
            raise KeyError(f"unknown job {name_or_event!r}; known jobs: {known}") from None

    def _name_of(self, event: str) -> str:
        name = event.removeprefix(self.event_prefix)
        if not event.startswith(self.event_prefix) or not _NAME.fullmatch(name):
            raise JobDeclarationError(
                f"event {event!r} must look like '{self.event_prefix}area.action'"
            )
        return name

    def _check_route(self, route: str, owner: str) -> None:
        if not _ROUTE.fullmatch(route):
            raise JobDeclarationError(
                f"{owner}: route {route!r} must look like /api/words-and/dashes"
            )
        if route == INNGEST_PATH:
            raise JobDeclarationError(f"{owner}: route {route} is Inngest's endpoint")
        if route in self._routes and self._routes[route] != owner:
            raise JobDeclarationError(
                f"{owner}: route {route} already belongs to {self._routes[route]}"
            )


def _takes_payload_and_error(hook: object) -> bool:
    """Whether `hook` can be called as hook(payload, error), as every provider calls it."""
    if not callable(hook):
        return False
    try:
        inspect.signature(hook).bind(None, "")
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): taken on trust
        return True
    return True


def validate_job(spec: JobSpec[Any]) -> None:
    """What a declaration must satisfy on its own, whichever registry records it."""
    where = spec.event
    if not (isinstance(spec.payload, type) and issubclass(spec.payload, Payload)):
        raise JobDeclarationError(f"{where}: payload must be a bridge.Payload subclass")
    if not 0 <= spec.retries <= 20:
        raise JobDeclarationError(f"{where}: retries must be 0..20 (Inngest's maximum is 20)")
    if spec.timeout_seconds <= 0:
        raise JobDeclarationError(f"{where}: timeout_seconds must be positive")
    fields = spec.payload.model_fields
    wire_names = {f.alias or n for n, f in fields.items()}
    if spec.limited_by_key and spec.key not in wire_names:
        raise JobDeclarationError(f"{where}: per-key limits need a payload field {spec.key!r}")
    if spec.cancel_key is not None and spec.cancel_key not in wire_names:
        raise JobDeclarationError(
            f"{where}: cancel_key {spec.cancel_key!r} is not a payload field; one of "
            f"{', '.join(sorted(wire_names))}"
        )
    if spec.batch_body is not None and spec.key not in wire_names:
        raise JobDeclarationError(f"{where}: batch_body needs a payload field {spec.key!r}")
    _check_functions(spec)
    if spec.delayable and "scheduled_for" not in fields:
        raise JobDeclarationError(f"{where}: delayable jobs need a `scheduled_for` payload field")
    if spec.flow_key_prefix is not None and not _FLOW_KEY.fullmatch(spec.flow_key_prefix):
        raise JobDeclarationError(
            f"{where}: flow_key_prefix {spec.flow_key_prefix!r} may hold letters, digits, "
            "'-', '_' and '.' only (QStash's flow-control key alphabet)"
        )
    if spec.flow_key_prefix is not None and not spec.limited_by_key:
        raise JobDeclarationError(f"{where}: flow_key_prefix needs per-key limits to name")
    if spec.concurrency is not None and spec.concurrency < 1:
        raise JobDeclarationError(f"{where}: concurrency must be at least 1")
    if spec.throttle is not None and (spec.throttle.limit < 1 or spec.throttle.period_seconds < 1):
        raise JobDeclarationError(
            f"{where}: throttle needs limit >= 1 and period_seconds >= 1, got {spec.throttle}"
        )


def _check_functions(spec: JobSpec[Any]) -> None:
    """The functions a declaration names besides its body take what they are given."""
    where = spec.event
    if spec.on_failure is not None and not _takes_payload_and_error(spec.on_failure):
        raise JobDeclarationError(
            f"{where}: on_failure must be a callable taking (payload, error), "
            f"got {spec.on_failure!r}"
        )
    if spec.answer_early is not None and not inspect.iscoroutinefunction(spec.answer_early):
        raise JobDeclarationError(
            f"{where}: answer_early must be an async function taking the payload, "
            f"got {spec.answer_early!r}"
        )
    if spec.batch_body is not None and not callable(spec.batch_body):
        raise JobDeclarationError(
            f"{where}: batch_body must be a callable taking (payloads, delivery), "
            f"got {spec.batch_body!r}"
        )
