"""Queries behind the abuse limits: one client's requests and Send taps, counted under the client's lock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import AppointmentRow, ClientRow, ClientSendsRow, TransitionRow
from scheduling.model import Status


def _requests(rows: list[tuple[int, int | None]]) -> int:
    """Requests among appointment rows: a series' visits were asked for as one."""
    return len({("series", series) if series is not None else ("visit", appt) for appt, series in rows})


class LimitQueries:
    """Mixed into the store's transaction class; `session` is the open transaction's session."""

    session: AsyncSession

    async def lock_client(self, client_id: int) -> None:
        """Serialise one client's requests: call first in the transaction, held until it ends.

        A write to the client's row: PostgreSQL locks that row, SQLite takes its database write lock.
        """
        await self.session.execute(
            update(ClientRow).where(ClientRow.id == client_id).values(updated_at=ClientRow.updated_at)
        )

    async def pending_requests(self, client_id: int, *, moving: int | None = None) -> int:
        """The client's undecided requests; a pending request to move `moving` is left out (it is replaced)."""
        stmt = select(AppointmentRow.id, AppointmentRow.series_id).where(
            AppointmentRow.client_id == client_id, AppointmentRow.status == Status.REQUESTED
        )
        if moving is not None:
            stmt = stmt.where((AppointmentRow.replaces_id.is_(None)) | (AppointmentRow.replaces_id != moving))
        return _requests([(a, s) for a, s in (await self.session.execute(stmt)).all()])

    async def client_requests(self, client_id: int) -> list[AppointmentRow]:
        """The client's undecided requests, row-locked on PostgreSQL, soonest first."""
        stmt = (
            select(AppointmentRow)
            .where(AppointmentRow.client_id == client_id, AppointmentRow.status == Status.REQUESTED)
            .order_by(AppointmentRow.start, AppointmentRow.id)
            .with_for_update(of=AppointmentRow)
            .execution_options(populate_existing=True)
        )
        return list(await self.session.scalars(stmt))

    async def requests_since(self, client_id: int, since: datetime) -> int:
        """Requests the client made themselves since then, whatever became of them."""
        stmt = (
            select(AppointmentRow.id, AppointmentRow.series_id)
            .join(TransitionRow, TransitionRow.appointment_id == AppointmentRow.id)
            .where(
                AppointmentRow.client_id == client_id,
                AppointmentRow.created_at >= since,
                TransitionRow.from_status.is_(None),
                TransitionRow.actor == f"client:{client_id}",
            )
        )
        return _requests([(a, s) for a, s in (await self.session.execute(stmt)).all()])

    async def count_send(self, client_id: int, now: datetime, window: timedelta) -> int:
        """Count one Send in the client's current window (a new one once `window` has passed); returns the count.

        Call after lock_client, which makes the read and the write one step for this client.
        """
        row = await self.session.get(ClientSendsRow, client_id, populate_existing=True)
        if row is None:
            row = ClientSendsRow(client_id=client_id, window_start=now, count=0)
            self.session.add(row)
        elif row.window_start <= now - window:
            row.window_start, row.count = now, 0
        row.count += 1
        await self.session.flush()
        return row.count

    async def uncount_send(self, client_id: int) -> None:
        """One Send fewer in the client's current window (never below none)."""
        row = await self.session.get(ClientSendsRow, client_id, populate_existing=True)
        if row is not None and row.count > 0:
            row.count -= 1
            await self.session.flush()
