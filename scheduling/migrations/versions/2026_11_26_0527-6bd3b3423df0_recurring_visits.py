"""Recurring visits: the series table, and each appointment's series and instance (RECURRENCE-ID)

Revision ID: 6bd3b3423df0
Revises: 3d50ca561607
Create Date: 2026-11-26 05:27:34.006353
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "6bd3b3423df0"
down_revision = "3d50ca561607"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("tzid", sa.String(length=64), nullable=False),
        sa.Column("first_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("interval_weeks", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["series.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_series_specialist_id"), ["specialist_id"], unique=False)

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recurrence_id", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_appointments_series_id"), ["series_id"], unique=False)
        batch_op.create_foreign_key("fk_appointments_series_id_series", "series", ["series_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_appointments_series_id_series", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_appointments_series_id"))
        batch_op.drop_column("recurrence_id")
        batch_op.drop_column("series_id")

    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_specialist_id"))
        batch_op.drop_index(batch_op.f("ix_series_client_id"))

    op.drop_table("series")
