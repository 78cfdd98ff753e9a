"""What the database is sent while a block runs, and how much of a table a statement
read (PostgreSQL's own account of it: EXPLAIN ANALYZE)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event


@dataclass(frozen=True)
class Sent:
    statement: str
    parameters: Any  # a list of rows when sent as the driver's executemany

    @property
    def rows_sent(self) -> int:
        """The rows the statement was sent with: one statement each, on psycopg."""
        return len(self.parameters) if isinstance(self.parameters, list) else 1


@contextmanager
def sent_statements(bound: Engine) -> Iterator[list[Sent]]:
    """Each statement sent while the block runs, with its parameters."""
    sent: list[Sent] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append(Sent(statement, parameters))

    event.listen(bound, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(bound, "before_cursor_execute", record)


def rows_read(bound: Engine, statement: str, parameters: Any) -> dict[str, int]:
    """Run the statement again under EXPLAIN ANALYZE: the index entries and rows it
    read from each table (matched or filtered out, over all of a node's loops)."""
    with bound.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
        ).scalar_one()
    read: dict[str, int] = {}
    for node in _nodes(plan[0]["Plan"]):
        table = node.get("Relation Name") or _table_of_index(bound, node.get("Index Name"))
        if table is None or node["Node Type"] == "Bitmap Heap Scan":
            continue  # a bitmap heap scan reads what its index scan found, counted there
        loops = node.get("Actual Loops", 1)
        seen = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        read[table] = read.get(table, 0) + seen * loops
    return read


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _table_of_index(bound: Engine, index: str | None) -> str | None:
    if index is None:
        return None
    with bound.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = %(i)s::regclass",
            {"i": index},
        ).scalar_one_or_none()
    return None if found is None else str(found)
