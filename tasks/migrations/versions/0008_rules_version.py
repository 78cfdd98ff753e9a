"""an account's rules version, changed by the database on every change to its rules

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A process keeps an account's rules while their version is the one it read them at
(`tasks.rules.cache`). Triggers change it, so every writer counts: the accounts file, a
migration, or an operator's SQL. The version is a random 63-bit token, not a counter:
a count starts again after a restore, a downgrade or a TRUNCATE, and a process could
meet a number it had cached for other rules. On PostgreSQL a TRUNCATE of either table
gives every account a new token.

Later migrations: a batch operation that recreates `rule`, `rule_action` or
`email_account` on SQLite drops these triggers (or fails on them); create them again
(tests/app/test_rules_cache.py checks they exist at head).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("rule", "rule_action")
# A new token: 63 random bits on SQLite, 52 on PostgreSQL (random() is a double).
_SQLITE_TOKEN = "random()"
_POSTGRES_TOKEN = "(floor(random() * 9.2e18))::bigint"


def _postgres_functions(schema: str) -> list[str]:
    """The trigger functions, with the tables named by the schema jobbridge is migrated
    into and a search_path that cannot reach a writer's own tables (pg_temp last)."""
    account = f"{schema}.email_account"
    rule = f"{schema}.rule"
    bump = f"UPDATE {account} SET rules_version = {_POSTGRES_TOKEN}"
    header = "RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$"
    return [
        f"""
CREATE FUNCTION {schema}.bump_rules_version() {header}
BEGIN
    -- OLD is NULL on INSERT and NEW on DELETE; an UPDATE may move a row between owners.
    IF TG_TABLE_NAME = 'rule' THEN
        {bump} WHERE id IN (OLD.email_account_id, NEW.email_account_id);
    ELSE
        {bump} WHERE id IN (
            SELECT email_account_id FROM {rule} WHERE id IN (OLD.rule_id, NEW.rule_id)
        );
    END IF;
    RETURN NULL;
END
$$""",
        f"""
CREATE FUNCTION {schema}.bump_all_rules_versions() {header}
BEGIN
    {bump};
    RETURN NULL;
END
$$""",
    ]


# SQLite: a trigger per table and operation, NEW and OLD only where they exist.
_OWNER = {
    "rule": "{row}.email_account_id",
    "rule_action": "(SELECT email_account_id FROM rule WHERE id = {row}.rule_id)",
}
_ROWS = {"INSERT": ("NEW",), "UPDATE": ("OLD", "NEW"), "DELETE": ("OLD",)}


def sqlite_triggers() -> list[tuple[str, str]]:
    """(name, CREATE TRIGGER statement) for each SQLite trigger."""
    triggers = []
    for table, owner in _OWNER.items():
        for operation, rows in _ROWS.items():
            owners = ", ".join(owner.format(row=row) for row in rows)
            name = f"{table}_{operation.lower()}_bumps_rules_version"
            body = (
                f"CREATE TRIGGER {name} AFTER {operation} ON {table} BEGIN "
                f"UPDATE email_account SET rules_version = {_SQLITE_TOKEN} "
                f"WHERE id IN ({owners}); END"
            )
            triggers.append((name, body))
    return triggers


def _schema() -> str:
    bind = op.get_bind()
    name = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    return str(bind.dialect.identifier_preparer.quote_schema(name))


def upgrade() -> None:
    op.add_column(
        "email_account",
        sa.Column("rules_version", sa.BigInteger(), nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name != "postgresql":
        op.execute(f"UPDATE email_account SET rules_version = {_SQLITE_TOKEN}")
        for _, body in sqlite_triggers():
            op.execute(body)
        return
    schema = _schema()
    op.execute(f"UPDATE email_account SET rules_version = {_POSTGRES_TOKEN}")
    for function in _postgres_functions(schema):
        op.execute(function)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_bumps_rules_version "
            f"AFTER INSERT OR UPDATE OR DELETE ON {schema}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {schema}.bump_rules_version()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_truncate_bumps_rules_versions "
            f"AFTER TRUNCATE ON {schema}.{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {schema}.bump_all_rules_versions()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        schema = _schema()
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bumps_rules_version ON {schema}.{table}")
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_truncate_bumps_rules_versions ON {schema}.{table}"
            )
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.bump_rules_version()")
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.bump_all_rules_versions()")
    else:
        for name, _ in sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_column("email_account", "rules_version")
