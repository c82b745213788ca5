"""Group sessions: one visit several clients share, each seat an appointment row.

Revision ID: c01973a762ff
Revises: 4801bcf8abd3
Create Date: 2026-11-26 08:22:50.806578
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c01973a762ff"
down_revision = "4801bcf8abd3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("specialist_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("specialist_id", "start", "service_id", "location_id", name="uq_group_sessions_slot"),
        sa.UniqueConstraint("uid"),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_appointments_group_id"), ["group_id"], unique=False)
        batch_op.create_foreign_key("fk_appointments_group_id_group_sessions", "group_sessions", ["group_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_appointments_group_id_group_sessions", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_appointments_group_id"))
        batch_op.drop_column("group_id")

    op.drop_table("group_sessions")
