"""Abuse limits: each client's Send taps counted in a window shared by every process.

Revision ID: 4801bcf8abd3
Revises: 5ba1a125a01a
Create Date: 2026-11-26 08:28:34.661719
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4801bcf8abd3"
down_revision = "5ba1a125a01a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_sends",
        sa.Column("client_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("client_id"),
    )


def downgrade() -> None:
    op.drop_table("client_sends")
