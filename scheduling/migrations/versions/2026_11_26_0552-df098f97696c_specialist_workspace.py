"""The specialist's workspace: staff notes, flags, reassignment, staff-created clients, what each change was.

Revision ID: df098f97696c
Revises: 19feb3d57eb6
Create Date: 2026-11-26 05:52:11.691326
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "df098f97696c"
down_revision = "19feb3d57eb6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
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
    with op.batch_alter_table("staff_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_notes_appointment_id"), ["appointment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_notes_client_id"), ["client_id"], unique=False)

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.String(length=100), server_default="", nullable=False))
        batch_op.add_column(sa.Column("reassign_to", sa.String(length=64), nullable=True))

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=100), nullable=True))

    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_column("details")

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("created_by")

    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("reassign_to")
        batch_op.drop_column("flags")

    with op.batch_alter_table("staff_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_notes_client_id"))
        batch_op.drop_index(batch_op.f("ix_staff_notes_appointment_id"))

    op.drop_table("staff_notes")
