"""Queries behind the privacy rules: feed tokens, consents, exports, erasure and old drafts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import ConsentRow, DraftRow, FeedTokenRow

# The two consents a client gives, recorded separately with the policy version.
TERMS = "terms"  # the terms of service and the privacy policy
HEALTH = "health"  # the processing of health information in the client's notes


class PrivacyQueries:
    """Mixed into the store's transaction class; `session` is the open transaction's session."""

    session: AsyncSession

    # consents

    async def has_consent(self, client_id: int, policy_version: str, kind: str = TERMS) -> bool:
        """Whether the client gave this consent to this version of the policy and has not withdrawn it."""
        found = await self.session.scalar(
            select(
                exists().where(
                    ConsentRow.client_id == client_id,
                    ConsentRow.policy_version == policy_version,
                    ConsentRow.kind == kind,
                    ConsentRow.withdrawn_at.is_(None),
                )
            )
        )
        return bool(found)

    async def record_consent(self, client_id: int, policy_version: str, at: datetime, kind: str = TERMS) -> None:
        self.session.add(ConsentRow(client_id=client_id, policy_version=policy_version, kind=kind, accepted_at=at))
        await self.session.flush()

    async def withdraw_consents(self, client_id: int, at: datetime) -> int:
        """Withdraw every consent the client gave; returns how many there were."""
        result = await self.session.execute(
            update(ConsentRow)
            .where(ConsentRow.client_id == client_id, ConsentRow.withdrawn_at.is_(None))
            .values(withdrawn_at=at)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    async def consents(self, client_id: int) -> list[ConsentRow]:
        rows = await self.session.scalars(
            select(ConsentRow).where(ConsentRow.client_id == client_id).order_by(ConsentRow.accepted_at, ConsentRow.id)
        )
        return list(rows)

    # drafts

    async def delete_drafts_before(self, cutoff: datetime) -> int:
        """Forget dialogs nobody touched since `cutoff` (what a client typed into one included)."""
        result = await self.session.execute(
            delete(DraftRow).where(DraftRow.updated_at < cutoff).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

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
