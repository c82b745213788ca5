"""Retire the hand-kept `schema_version` table: Alembic's `alembic_version` records the revision now.

Revision ID: 5f0c2a7e91d4
Revises: baseline
Create Date: 2026-11-26 05:01:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5f0c2a7e91d4"
down_revision = "baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("schema_version")


def downgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO schema_version (id, version) VALUES (1, 1)")
