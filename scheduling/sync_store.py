"""Queries of the calendar sync: what we wrote where, what reads showed, incidents and failing writes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import AppointmentRow, CalendarIncidentRow, OutboxRow


class CalendarSyncQueries:
    """Mixed into the store's transaction (`Tx`); every method runs inside it."""

    session: AsyncSession

    async def _set(self, ids: Collection[int], **values: object) -> None:
        if ids:
            await self.session.execute(
                update(AppointmentRow)
                .where(AppointmentRow.id.in_(list(ids)))
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def record_writes(self, ids: Collection[int], calendar_url: str | None, at: datetime) -> None:
        """The outbox wrote (or, with None, removed) the event of these appointments: a read must show each anew."""
        await self._set(ids, calendar_url=calendar_url, written_at=at, seen_at=None, missing_since=None)

    async def record_seen(self, ids: Collection[int], at: datetime) -> None:
        """A successful read showed these events."""
        await self._set(ids, seen_at=at, missing_since=None)

    async def record_missing(self, ids: Collection[int], at: datetime) -> None:
        """A successful read did not show these events; the first such read is kept."""
        await self._set(ids, missing_since=func.coalesce(AppointmentRow.missing_since, at))

    async def forget_reads(self, ids: Collection[int]) -> None:
        """Start judging these events afresh (they are being written again)."""
        await self._set(ids, seen_at=None, missing_since=None)

    # incidents

    async def open_incident(self, specialist_id: str, appointment_ids: list[int], at: datetime) -> CalendarIncidentRow:
        row = CalendarIncidentRow(specialist_id=specialist_id, appointments={"ids": appointment_ids}, created_at=at)
        self.session.add(row)
        await self.session.flush()
        return row

    async def open_incidents(self, specialist_id: str) -> list[CalendarIncidentRow]:
        rows = await self.session.scalars(
            select(CalendarIncidentRow)
            .where(CalendarIncidentRow.specialist_id == specialist_id, CalendarIncidentRow.resolved_at.is_(None))
            .order_by(CalendarIncidentRow.id)
        )
        return list(rows)

    async def get_incident(self, incident_id: int) -> CalendarIncidentRow | None:
        return await self.session.get(CalendarIncidentRow, incident_id)

    async def resolve_incident(self, incident_id: int, resolution: str, actor: str, at: datetime) -> bool:
        """Close the incident; False if someone else closed it first."""
        result = await self.session.execute(
            update(CalendarIncidentRow)
            .where(CalendarIncidentRow.id == incident_id, CalendarIncidentRow.resolved_at.is_(None))
            .values(resolved_at=at, resolution=resolution, resolved_by=actor)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    # failing writes

    async def failing_since(self) -> dict[str, datetime]:
        """Per specialist: since when the oldest calendar write that has failed at least once is waiting."""
        rows = await self.session.execute(
            select(OutboxRow.specialist_id, func.min(OutboxRow.created_at))
            .where(OutboxRow.done_at.is_(None), OutboxRow.attempts > 0)
            .group_by(OutboxRow.specialist_id)
        )
        return {spec_id: since for spec_id, since in rows}

    async def claim_write_alerts(self, failing_before: datetime, at: datetime) -> dict[str, str]:
        """Specialists with writes failing since before `failing_before` nobody was told of: spec -> last error.

        Marks every pending row of those specialists as told, so each outage is reported once.
        """
        rows = await self.session.execute(
            select(OutboxRow.specialist_id, OutboxRow.last_error)
            .where(
                OutboxRow.done_at.is_(None),
                OutboxRow.attempts > 0,
                OutboxRow.created_at <= failing_before,
                OutboxRow.alerted_at.is_(None),
            )
            .order_by(OutboxRow.created_at.desc())
        )
        errors: dict[str, str] = {}
        for spec_id, error in rows:
            errors.setdefault(spec_id, error or "")
        if errors:
            result = await self.session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.specialist_id.in_(list(errors)),
                    OutboxRow.done_at.is_(None),
                    OutboxRow.alerted_at.is_(None),
                )
                .values(alerted_at=at)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 0:
                return {}  # another process told them
        return errors
