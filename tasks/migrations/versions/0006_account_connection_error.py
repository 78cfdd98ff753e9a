"""why an account's mailbox cannot be opened until it is connected again

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("email_account", sa.Column("connection_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("email_account", "connection_error")
