"""Alembic environment: the URL comes from the caller (`tasks.schema.upgrade`), or Settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from tasks.models import Base

config = context.config
if not config.get_main_option("sqlalchemy.url"):
    from config import get_settings

    config.set_main_option("sqlalchemy.url", get_settings().sqlalchemy_url)


def run_migrations() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
