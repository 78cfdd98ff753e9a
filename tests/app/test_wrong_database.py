"""`db upgrade` refuses the inbox app's own database: its tables beside jobbridge's would
leave the jobs running on empty copies of the data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from config import ConfigError
from tasks.schema import upgrade
from tests.support.commands import assert_plain, jobbridge
from tests.support.services import create_database, drop_database

PRISMA_TABLES = ['"ScheduledAction"', '"EmailAccount"', '"Digest"', "_prisma_migrations"]


@pytest.fixture
def inbox_app_database() -> Iterator[str]:
    """A database laid out as the inbox app's Prisma schema leaves it, in `public`."""
    url = create_database()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        for table in PRISMA_TABLES:
            connection.execute(f"CREATE TABLE {table} (id text PRIMARY KEY)")
    yield url
    drop_database(url)


def tables(url: str, schema: str | None = None) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()


def test_upgrade_refuses_a_schema_holding_another_apps_tables(inbox_app_database: str) -> None:
    with pytest.raises(ConfigError) as refused:
        upgrade(inbox_app_database, allow_other_tables=False)

    message = str(refused.value)
    assert '"ScheduledAction"' in message and '"EmailAccount"' in message
    assert "CREATE DATABASE jobbridge" in message
    assert "DATABASE_ALLOW_OTHER_TABLES=true" in message
    assert "scheduled_action" not in tables(inbox_app_database)  # nothing was created


def test_upgrade_into_a_schema_of_jobbridges_own_leaves_the_app_tables_alone(
    inbox_app_database: str,
) -> None:
    with psycopg.connect(inbox_app_database.replace("+psycopg", ""), autocommit=True) as c:
        c.execute("CREATE SCHEMA jobbridge")
    own_schema = inbox_app_database + "?options=-csearch_path%3Djobbridge"

    upgrade(own_schema, allow_other_tables=False)

    assert "scheduled_action" in tables(inbox_app_database, schema="jobbridge")
    assert "scheduled_action" not in tables(inbox_app_database, schema="public")


def test_upgrade_shares_the_schema_when_the_operator_says_so(
    inbox_app_database: str, configure: Callable[..., Any]
) -> None:
    configure(DATABASE_ALLOW_OTHER_TABLES="true")

    upgrade(inbox_app_database)

    assert {"scheduled_action", "ScheduledAction"} <= tables(inbox_app_database)


def test_upgrade_of_jobbridges_own_database_runs_again_without_complaint() -> None:
    url = create_database()
    try:
        upgrade(url, allow_other_tables=False)
        upgrade(url, allow_other_tables=False)
        assert "scheduled_action" in tables(url)
    finally:
        drop_database(url)


def test_db_upgrade_command_refuses_it_plainly_naming_the_tables(
    inbox_app_database: str, tmp_path: Path
) -> None:
    done = jobbridge("db", "upgrade", workdir=tmp_path, DATABASE_URL=inbox_app_database)

    lines = assert_plain(done, 2)
    assert '"ScheduledAction"' in lines[0]
    assert "scheduled_action" not in tables(inbox_app_database)
