"""What an app tells the status page about its recent work (bridge.apps.AppAudit.activity):
a count per minute by key (a chart) and a few tables of rows (failures, stuck work).

Plain data the shim renders without knowing what is counted: titles, column names and
cells are the app's words. The shim escapes every cell; the app need not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class MinuteSeries:
    """Counts per minute from `start` (a whole minute, UTC) for `minutes` minutes, by key
    (on the inbox app: by the provider that ran the work)."""

    title: str
    start: datetime
    minutes: int
    counts: dict[str, tuple[int, ...]] = field(default_factory=dict)  # each `minutes` long

    def __post_init__(self) -> None:
        wrong = {key: len(v) for key, v in self.counts.items() if len(v) != self.minutes}
        if wrong:
            raise ValueError(f"every series needs {self.minutes} counts, got {wrong}")

    def minute(self, index: int) -> datetime:
        return self.start + timedelta(minutes=index)

    def total(self, key: str) -> int:
        return sum(self.counts.get(key, ()))

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "start": self.start.isoformat(),
            "minutes": self.minutes,
            "counts": {key: list(values) for key, values in self.counts.items()},
            "totals": {key: self.total(key) for key in self.counts},
        }


@dataclass(frozen=True)
class RowTable:
    """Rows to list, the first few of `total`; `empty` is said when there are none."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] = ()
    total: int = 0
    empty: str = "none"

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "total": self.total,
            "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows],
        }


@dataclass(frozen=True)
class Activity:
    series: MinuteSeries
    tables: tuple[RowTable, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "series": self.series.as_json(),
            "tables": [table.as_json() for table in self.tables],
        }
