"""an account's rules version, bumped by the database on every change to its rules

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A process keeps an account's rules while their version is the one it read them at
(`tasks.rules.cache`). Triggers bump it, so every writer counts: the accounts file, a
migration, or an operator's SQL. One bump per changed row of `rule` or `rule_action`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BUMP = "UPDATE email_account SET rules_version = rules_version + 1"

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION bump_rules_version() RETURNS trigger LANGUAGE plpgsql
-- The tables by the schema jobbridge was migrated into, whatever a writer's search_path.
SET search_path FROM CURRENT AS $$
BEGIN
    -- OLD is NULL on INSERT and NEW on DELETE; an UPDATE may move a row between owners.
    IF TG_TABLE_NAME = 'rule' THEN
        {_BUMP} WHERE id IN (OLD.email_account_id, NEW.email_account_id);
    ELSE
        {_BUMP} WHERE id IN (
            SELECT email_account_id FROM rule WHERE id IN (OLD.rule_id, NEW.rule_id)
        );
    END IF;
    RETURN NULL;
END
$$
"""

# SQLite: a trigger per table and operation, NEW and OLD only where they exist.
_OWNER = {
    "rule": "{row}.email_account_id",
    "rule_action": "(SELECT email_account_id FROM rule WHERE id = {row}.rule_id)",
}
_ROWS = {"INSERT": ("NEW",), "UPDATE": ("OLD", "NEW"), "DELETE": ("OLD",)}


def _sqlite_triggers() -> list[tuple[str, str]]:
    triggers = []
    for table, owner in _OWNER.items():
        for operation, rows in _ROWS.items():
            owners = ", ".join(owner.format(row=row) for row in rows)
            name = f"{table}_{operation.lower()}_bumps_rules_version"
            body = (
                f"CREATE TRIGGER {name} AFTER {operation} ON {table} "
                f"BEGIN {_BUMP} WHERE id IN ({owners}); END"
            )
            triggers.append((name, body))
    return triggers


def upgrade() -> None:
    op.add_column(
        "email_account",
        sa.Column("rules_version", sa.Integer(), nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        for table in _OWNER:
            op.execute(
                f"CREATE TRIGGER {table}_bumps_rules_version "
                f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION bump_rules_version()"
            )
        return
    for _, body in _sqlite_triggers():
        op.execute(body)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _OWNER:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bumps_rules_version ON {table}")
        op.execute("DROP FUNCTION IF EXISTS bump_rules_version()")
    else:
        for name, _ in _sqlite_triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_column("email_account", "rules_version")
