"""Feed tokens: how often each specialist's read-only feed address was renewed (`bookingbot feed rotate`).

A specialist without a row keeps the address derived from feed.key alone, as before this revision.

Revision ID: 5ba1a125a01a
Revises: df098f97696c
Create Date: 2026-11-26 08:23:55.134085
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5ba1a125a01a"
down_revision = "df098f97696c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_tokens",
        sa.Column("specialist_id", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("specialist_id"),
    )


def downgrade() -> None:
    op.drop_table("feed_tokens")
