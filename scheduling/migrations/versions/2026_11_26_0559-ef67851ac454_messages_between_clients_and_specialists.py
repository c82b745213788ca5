"""Messages between clients and specialists, kept until delivered.

Revision ID: ef67851ac454
Revises: 914f436456c0
Create Date: 2026-11-26 05:59:32.957503
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ef67851ac454"
down_revision = "914f436456c0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("to_client", sa.Boolean(), nullable=False),
        sa.Column("sender", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("relayed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_appointment_id"), ["appointment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_appointment_id"))

    op.drop_table("messages")
