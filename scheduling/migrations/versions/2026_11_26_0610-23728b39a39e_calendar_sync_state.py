"""Calendar sync state: where each event was written and when a read last showed it; incidents; write alerts.

Appointments written before this revision have no sync state: a read that misses one writes it
again instead of cancelling it, until a read has shown it once.

Revision ID: 23728b39a39e
Revises: 7961c4232cf6
Create Date: 2026-11-26 05:30:53.472065
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "23728b39a39e"
down_revision = "7961c4232cf6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("specialist_id", sa.String(length=64), nullable=False),
        sa.Column("appointments", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("calendar_incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_incidents_specialist_id"), ["specialist_id"], unique=False)

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calendar_url", sa.String(length=1000), nullable=True))
        batch_op.add_column(sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("missing_since", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("alerted_at")

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("missing_since")
        batch_op.drop_column("seen_at")
        batch_op.drop_column("written_at")
        batch_op.drop_column("calendar_url")

    with op.batch_alter_table("calendar_incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_incidents_specialist_id"))

    op.drop_table("calendar_incidents")
