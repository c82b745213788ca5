"""Queries of the series aggregate: a series row and the appointment rows of its occurrences."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from scheduling.db import AppointmentRow, ClientRow, SeriesRow
from scheduling.model import ACTIVE_STATUSES
from scheduling.recurrence import Rule


def new_uid() -> str:
    """A fresh calendar event UID of ours."""
    return f"{uuid.uuid4().hex}@bookingbot"


def rule_of(series: SeriesRow) -> Rule:
    return Rule(series.first_start, series.tzid, series.interval_weeks, count=series.count, until=series.until)


class SeriesQueries:
    """Mixed into the store's transaction (Tx); every method runs inside it."""

    session: AsyncSession

    async def add_series(
        self,
        *,
        client_id: int,
        specialist_id: str,
        service_id: str,
        location_id: str,
        channel: str,
        rule: Rule,
        duration_minutes: int,
        note: str | None,
        at: datetime,
        parent_id: int | None = None,
        uid: str | None = None,
    ) -> SeriesRow:
        client = await self.session.get(ClientRow, client_id)
        if client is None:
            raise LookupError(f"client {client_id} does not exist")
        series = SeriesRow(
            uid=uid or new_uid(),
            client=client,
            specialist_id=specialist_id,
            service_id=service_id,
            location_id=location_id,
            channel=str(channel),
            tzid=rule.tzid,
            first_start=rule.start,
            duration_minutes=duration_minutes,
            interval_weeks=rule.interval_weeks,
            count=rule.count,
            until=rule.until,
            sequence=0,
            parent_id=parent_id,
            note=note,
            created_at=at,
            updated_at=at,
        )
        self.session.add(series)
        await self.session.flush()
        return series

    async def get_series(self, series_id: int, *, for_update: bool = False) -> SeriesRow | None:
        stmt = select(SeriesRow).where(SeriesRow.id == series_id)
        if for_update:
            stmt = stmt.with_for_update(of=SeriesRow)
        return await self.session.scalar(stmt.execution_options(populate_existing=True))

    async def series_rows(self, series_id: int) -> list[AppointmentRow]:
        """Every occurrence of the series, whatever its status, in rule order."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(AppointmentRow.series_id == series_id)
            .order_by(AppointmentRow.recurrence_id, AppointmentRow.id)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    async def calendar_anchors(self, appointment_id: int) -> list[int]:
        """The appointments whose outbox queues write the calendar resources a change of this one touches.

        Itself; or its group session's first seat; or its series' first row. A client's weekly seats in a
        group (a series whose rows are seats) live in their sessions' events: every session of the series.
        """
        found = (
            await self.session.execute(
                select(AppointmentRow.series_id, AppointmentRow.group_id).where(AppointmentRow.id == appointment_id)
            )
        ).first()
        if found is None or (found.series_id is None and found.group_id is None):
            return [appointment_id]
        if found.series_id is not None:
            groups = set(
                (
                    await self.session.scalars(
                        select(AppointmentRow.group_id).where(AppointmentRow.series_id == found.series_id)
                    )
                ).all()
            )
            if groups == {None}:
                anchor = await self.session.scalar(
                    select(func.min(AppointmentRow.id)).where(AppointmentRow.series_id == found.series_id)
                )
                return [int(anchor)] if anchor is not None else [appointment_id]
        else:
            groups = {found.group_id}
        rows = await self.session.execute(
            select(func.min(AppointmentRow.id))
            .where(AppointmentRow.group_id.in_([g for g in groups if g is not None]))
            .group_by(AppointmentRow.group_id)
        )
        return sorted(int(row[0]) for row in rows) or [appointment_id]

    async def calendar_anchor(self, appointment_id: int) -> int:
        """The first of `calendar_anchors`: the queue of the appointment's own calendar resource."""
        return (await self.calendar_anchors(appointment_id))[0]

    async def watched_series(self, specialist_id: str, start: datetime, end: datetime) -> list[SeriesRow]:
        """The specialist's series with an active occurrence starting in [start, end)."""
        ids = select(AppointmentRow.series_id).where(
            AppointmentRow.specialist_id == specialist_id,
            AppointmentRow.series_id.is_not(None),
            AppointmentRow.group_id.is_(None),  # weekly seats live in their sessions' events, not a series resource
            AppointmentRow.status.in_(ACTIVE_STATUSES),
            AppointmentRow.start >= start,
            AppointmentRow.start < end,
        )
        rows = await self.session.scalars(select(SeriesRow).where(SeriesRow.id.in_(ids)).order_by(SeriesRow.id))
        return list(rows)

    async def client_series(self, client_id: int) -> list[SeriesRow]:
        rows = await self.session.scalars(
            select(SeriesRow).where(SeriesRow.client_id == client_id).order_by(SeriesRow.id)
        )
        return list(rows)

    async def set_rule(self, series: SeriesRow, rule: Rule, at: datetime) -> None:
        """Give the series a new rule (its resource's SEQUENCE+1)."""
        values = {
            "first_start": rule.start,
            "interval_weeks": rule.interval_weeks,
            "count": rule.count,
            "until": rule.until,
            "updated_at": at,
        }
        await self.session.execute(
            update(SeriesRow)
            .where(SeriesRow.id == series.id)
            .values(**values, sequence=SeriesRow.sequence + 1)
            .execution_options(synchronize_session=False)
        )
        for name, value in values.items():
            set_committed_value(series, name, value)
        set_committed_value(series, "sequence", series.sequence + 1)

    async def touch_series(self, series: SeriesRow, at: datetime) -> None:
        """Something in the series changed: its resource's SEQUENCE+1."""
        await self.set_rule(series, rule_of(series), at)

    async def place_occurrence(self, appt: AppointmentRow, series_id: int, recurrence_id: datetime) -> None:
        """Make the row the given instance of the given series (a split or a rule change renames instances)."""
        await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.id == appt.id)
            .values(series_id=series_id, recurrence_id=recurrence_id)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(appt, "series_id", series_id)
        set_committed_value(appt, "recurrence_id", recurrence_id)
