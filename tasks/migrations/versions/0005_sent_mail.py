"""the send-once record of digests and summaries sent through Resend or SMTP_URL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tasks.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sent_mail",
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("transport", sa.String(length=20), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", tasks.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("sent_at", tasks.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tasks.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    op.create_index(op.f("ix_sent_mail_created_at"), "sent_mail", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sent_mail_created_at"), table_name="sent_mail")
    op.drop_table("sent_mail")
