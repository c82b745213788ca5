"""Erased clients: when a client's data was erased (on request in /privacy, or after the retention time).

The row stays without personal fields, so the practice's history of appointments stays whole.

Revision ID: 7aa36c9fd308
Revises: d3e069483038
Create Date: 2026-11-26 08:54:18.974712
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7aa36c9fd308"
down_revision = "d3e069483038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
