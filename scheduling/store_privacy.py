"""Queries behind the privacy rules: feed tokens, consents, exports, erasure and old drafts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import FeedTokenRow


class PrivacyQueries:
    """Mixed into the store's transaction class; `session` is the open transaction's session."""

    session: AsyncSession

    # feed tokens

    async def feed_generations(self) -> dict[str, int]:
        """How often each specialist's feed address was renewed (absent: never)."""
        rows = await self.session.execute(select(FeedTokenRow.specialist_id, FeedTokenRow.generation))
        return {spec_id: int(generation) for spec_id, generation in rows}

    async def feed_generation(self, specialist_id: str) -> int:
        found = await self.session.scalar(
            select(FeedTokenRow.generation).where(FeedTokenRow.specialist_id == specialist_id)
        )
        return int(found or 0)

    async def rotate_feed(self, specialist_id: str, at: datetime) -> int:
        """Renew the specialist's feed address (the old one stops working); returns the new generation."""
        row = await self.session.get(FeedTokenRow, specialist_id, with_for_update=True)
        if row is None:
            row = FeedTokenRow(specialist_id=specialist_id, generation=0, rotated_at=at)
            self.session.add(row)
        row.generation += 1
        row.rotated_at = at
        await self.session.flush()
        return row.generation
