"""Client changes: requests to move a visit, late cancellations, "first available" bookings.

Revision ID: 3d50ca561607
Revises: 5f0c2a7e91d4
Create Date: 2026-11-26 05:30:38.876858
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3d50ca561607"
down_revision = "5f0c2a7e91d4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_available", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("cancelled_late", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_appointments_replaces_id"), ["replaces_id"], unique=False)
        batch_op.create_foreign_key("fk_appointments_replaces_id", "appointments", ["replaces_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_constraint("fk_appointments_replaces_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_appointments_replaces_id"))
        batch_op.drop_column("replaces_id")
        batch_op.drop_column("cancelled_late")
        batch_op.drop_column("first_available")
