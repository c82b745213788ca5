"""Consents of two kinds, recorded separately: the terms (and privacy policy), and health information in notes.

Every consent given before this revision was to the terms (that is what the screen asked), so existing
rows become "terms"; withdrawn_at records a consent withdrawn in /privacy.

Revision ID: d3e069483038
Revises: c01973a762ff
Create Date: 2026-11-26 08:36:53.251779
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d3e069483038"
down_revision = "c01973a762ff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="terms", nullable=False))
        batch_op.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("withdrawn_at")
        batch_op.drop_column("kind")
