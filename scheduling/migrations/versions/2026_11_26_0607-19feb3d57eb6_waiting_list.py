"""The waiting list: clients who want an earlier time, and the offer each holds.

Revision ID: 19feb3d57eb6
Revises: ef67851ac454
Create Date: 2026-11-26 06:07:25.890171
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "19feb3d57eb6"
down_revision = "ef67851ac454"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waiting_list",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("specialist_id", sa.String(length=64), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offer_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offer_specialist", sa.String(length=64), nullable=True),
        sa.Column("offer_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offer_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("offer_message_id", sa.BigInteger(), nullable=True),
        sa.Column("passed", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("waiting_list", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_waiting_list_client_id"), ["client_id"], unique=False)
        batch_op.create_index("ix_waiting_list_status", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("waiting_list", schema=None) as batch_op:
        batch_op.drop_index("ix_waiting_list_status")
        batch_op.drop_index(batch_op.f("ix_waiting_list_client_id"))

    op.drop_table("waiting_list")
