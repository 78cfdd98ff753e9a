"""Jobs named as the CLI names them and payloads as the wire carries them, for tests
that publish many jobs from one table of cases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tasks
from bridge.payload import Payload
from bridge.publishing import validate
from bridge.registry import JobSpec


def job(name: str) -> JobSpec[Any]:
    return tasks.registry.job_for(name)


def wire(name: str, data: Mapping[str, Any]) -> tuple[JobSpec[Any], Payload]:
    """The job and its payload from wire data; InvalidPayload names a bad field."""
    spec = job(name)
    return spec, validate(spec, data)
