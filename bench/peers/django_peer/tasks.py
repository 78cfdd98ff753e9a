"""The task django-qstash runs: found by its discovery (the settings package's `tasks`)."""

from __future__ import annotations

from django_qstash import stashed_task


@stashed_task
def execute(scheduled_action_id: str) -> None:
    """No-op: the webhook's own work (verify, parse, import, call) is what is measured."""
    return None
