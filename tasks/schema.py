"""Apply Alembic migrations programmatically (`jobbridge db upgrade`, tests, `make dev`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from config import ConfigError, get_settings
from tasks.models import Base

MIGRATIONS = Path(__file__).with_name("migrations")
ALEMBIC_TABLE = "alembic_version"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", *, allow_other_tables: bool | None = None) -> None:
    """Migrate the database at `url`; refuse one whose schema holds another app's tables
    unless DATABASE_ALLOW_OTHER_TABLES (or `allow_other_tables`) says that is meant."""
    if allow_other_tables is None:
        allow_other_tables = get_settings().database_allow_other_tables
    if not allow_other_tables:
        refuse_other_apps_tables(url)
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The migration the database at `url` is at, None before the first."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def other_apps_tables(url: str) -> tuple[str | None, list[str]]:
    """The schema jobbridge would write to, and the tables in it that are not jobbridge's."""
    ours = {*Base.metadata.tables, ALEMBIC_TABLE}
    engine = create_engine(url, poolclass=NullPool)
    try:
        inspector = inspect(engine)
        schema = inspector.default_schema_name
        existing = set(inspector.get_table_names())
    finally:
        engine.dispose()
    if ALEMBIC_TABLE not in existing:
        # Not migrated by jobbridge yet: a table under one of its names is someone else's.
        return schema, sorted(existing)
    return schema, sorted(existing - ours)


def refuse_other_apps_tables(url: str) -> None:
    schema, others = other_apps_tables(url)
    if not others:
        return
    shown = ", ".join(f'"{name}"' for name in others[:5])
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    where = f'schema "{schema}"' if schema else "this database"
    raise ConfigError(
        f"DATABASE_URL points at a database whose {where} already holds tables jobbridge "
        f"did not create ({shown}{more}): jobbridge would add its own tables beside them "
        "and run its jobs on empty copies of that data. Give jobbridge a database of its "
        "own (CREATE DATABASE jobbridge) or a schema of its own (CREATE SCHEMA jobbridge, "
        "then add ?options=-csearch_path%3Djobbridge to DATABASE_URL), or set "
        "DATABASE_ALLOW_OTHER_TABLES=true if sharing this schema is meant."
    )
