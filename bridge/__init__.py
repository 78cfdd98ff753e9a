"""jobbridge's shim: declare jobs once, run them on Celery, Inngest, QStash or direct HTTP.

An app makes a `Registry`, declares its jobs on it (`@registry.job`, `@registry.cron`)
and publishes them with `enqueue`; `JOBBRIDGE_APP` names the module that holds the
registry (default `tasks`). See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from bridge.errors import DelayUnsupported, InvalidPayload, PublishError
from bridge.outcome import Delivery, Outcome, PermanentError, Result, RetryLater, done, skipped
from bridge.payload import Payload
from bridge.publishing import cancel, enqueue, enqueue_many, validate
from bridge.receipt import Receipt
from bridge.registry import CronSpec, JobDeclarationError, JobSpec, Registry, Throttle

__all__ = [
    "CronSpec",
    "DelayUnsupported",
    "Delivery",
    "InvalidPayload",
    "JobDeclarationError",
    "JobSpec",
    "Outcome",
    "Payload",
    "PermanentError",
    "PublishError",
    "Receipt",
    "Registry",
    "Result",
    "RetryLater",
    "Throttle",
    "cancel",
    "done",
    "enqueue",
    "enqueue_many",
    "skipped",
    "validate",
]
