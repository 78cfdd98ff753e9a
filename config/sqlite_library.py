"""Whether this Python's SQLite can hold jobbridge's database (the embedded default, or
a sqlite:// DATABASE_URL): an older one would fail only later, in a job, on a statement
it cannot parse."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from functools import cache

# RETURNING (a claim reads back the rows it took) came in SQLite 3.35.
SQLITE_AT_LEAST = (3, 35, 0)
# The JSON functions (json_each, json_group_array): built in since 3.38, optional before.
_JSON_PROBE = "SELECT json_group_array(value) FROM json_each('[1]')"


@cache
def sqlite_problem() -> str | None:
    """What this Python's SQLite library lacks that jobbridge needs, or None."""
    return missing_from(sqlite3.sqlite_version_info, sqlite3.sqlite_version)


def missing_from(version: tuple[int, int, int], named: str) -> str | None:
    if version < SQLITE_AT_LEAST:
        wanted = ".".join(map(str, SQLITE_AT_LEAST))
        return f"needs SQLite {wanted} or later, and this Python's sqlite3 has {named}"
    with closing(sqlite3.connect(":memory:")) as probe:
        try:
            probe.execute(_JSON_PROBE).fetchone()
        except sqlite3.OperationalError:
            return f"needs SQLite's JSON functions, and this Python's SQLite {named} lacks them"
    return None
