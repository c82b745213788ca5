"""Queries of the group session aggregate: a session row and the appointment rows of its seats."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import AppointmentRow, GroupRow


class GroupQueries:
    """Mixed into the store's transaction (Tx); every method runs inside it."""

    session: AsyncSession

    async def group_at(
        self, *, specialist_id: str, service_id: str, location_id: str, start: datetime, end: datetime, at: datetime
    ) -> GroupRow:
        """The session of the service at this place and start, made on first use (the caller holds the lock).

        A session whose seats were all cancelled is used again: its event comes back under the same UID.
        """
        found = await self.session.scalar(
            select(GroupRow).where(
                GroupRow.specialist_id == specialist_id,
                GroupRow.service_id == service_id,
                GroupRow.location_id == location_id,
                GroupRow.start == start,
            )
        )
        if found is not None:
            return found
        group = GroupRow(
            uid=f"{uuid.uuid4().hex}@bookingbot",
            specialist_id=specialist_id,
            service_id=service_id,
            location_id=location_id,
            start=start,
            end=end,
            created_at=at,
        )
        self.session.add(group)
        await self.session.flush()
        return group

    async def get_group(self, group_id: int) -> GroupRow | None:
        return await self.session.get(GroupRow, group_id)

    async def group_seats(self, group_id: int) -> list[AppointmentRow]:
        """Every seat ever taken in the session, whatever its status, in the order they were asked for."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(AppointmentRow.group_id == group_id)
            .order_by(AppointmentRow.id)
            .execution_options(populate_existing=True)
        )
        return list(rows)
