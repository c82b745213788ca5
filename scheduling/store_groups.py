"""Queries of the group session aggregate: a session row and the appointment rows of its seats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import AppointmentRow, GroupRow, OutboxRow
from scheduling.store_series import new_uid


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
            uid=new_uid(),
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

    async def get_group(self, group_id: int, *, for_update: bool = False) -> GroupRow | None:
        if not for_update:
            return await self.session.get(GroupRow, group_id)
        stmt = select(GroupRow).where(GroupRow.id == group_id).with_for_update(of=GroupRow)
        return await self.session.scalar(stmt.execution_options(populate_existing=True))

    async def move_group(self, group: GroupRow, start: datetime, end: datetime) -> bool:
        """Give the session a new time (its seats are moved by the caller); False when another session of the
        same service and place already starts then (the caller holds the specialist's lock)."""
        taken = await self.session.scalar(
            select(GroupRow.id).where(
                GroupRow.specialist_id == group.specialist_id,
                GroupRow.service_id == group.service_id,
                GroupRow.location_id == group.location_id,
                GroupRow.start == start,
                GroupRow.id != group.id,
            )
        )
        if taken is not None:
            return False
        group.start, group.end = start, end
        await self.session.flush()
        return True

    async def pending_groups(self) -> set[int]:
        """Sessions whose event has a calendar write waiting (a read may not show it yet)."""
        rows = await self.session.scalars(
            select(AppointmentRow.group_id)
            .join(OutboxRow, OutboxRow.appointment_id == AppointmentRow.id)
            .where(OutboxRow.done_at.is_(None), AppointmentRow.group_id.is_not(None))
        )
        return {g for g in rows if g is not None}

    async def group_seats(self, group_id: int) -> list[AppointmentRow]:
        """Every seat ever taken in the session, whatever its status, in the order they were asked for."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(AppointmentRow.group_id == group_id)
            .order_by(AppointmentRow.id)
            .execution_options(populate_existing=True)
        )
        return list(rows)
