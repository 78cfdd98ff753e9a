"""The QStash schedules that call this app (`jobbridge qstash schedules`), by route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qstash import QStash
from qstash.schedule import Schedule

from bridge.qstash.drain import Destination, Routes, from_millis


@dataclass(frozen=True)
class ScheduleRow:
    schedule: Schedule
    destination: Destination

    def as_json(self) -> dict[str, Any]:
        s = self.schedule
        return {
            "id": s.schedule_id,
            "cron": s.cron,
            "destination": self.destination.as_json(),
            "label": self.destination.label,
            "paused": s.paused,
            "lastRun": iso_millis(s.last_schedule_time),
            "nextRun": iso_millis(s.next_schedule_time),
            "error": s.error,
        }


def list_schedules(client: QStash, routes: Routes) -> list[ScheduleRow]:
    return [ScheduleRow(s, routes.destination(s.destination)) for s in client.schedule.list()]


def iso_millis(value: int | None) -> str | None:
    return from_millis(value).isoformat() if value else None
