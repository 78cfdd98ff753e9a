"""which provider ran each scheduled action, for the status page's executions by provider

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "scheduled_action", sa.Column("executed_provider", sa.String(length=20), nullable=True)
    )
    # Built without blocking writes to the table on PostgreSQL (a deploy runs this while
    # the old version still executes actions); CONCURRENTLY cannot run in a transaction.
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_scheduled_action_executed",
                "scheduled_action",
                ["status", "executed_at"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index(
            "ix_scheduled_action_executed", "scheduled_action", ["status", "executed_at"]
        )


def downgrade() -> None:
    op.drop_index("ix_scheduled_action_executed", table_name="scheduled_action")
    op.drop_column("scheduled_action", "executed_provider")
