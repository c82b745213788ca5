"""Queries behind the abuse limits: one client's requests and Send taps, counted under the client's lock."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.db import AppointmentRow, ClientRow, ClientSendsRow, TransitionRow, dialect_insert
from scheduling.model import Status
from scheduling.prepared import CoreStatements, DriverStatements, Hot


def _requests(rows: list[tuple[int, int | None]]) -> int:
    """Requests among appointment rows: a series' visits were asked for as one."""
    return len({("series", series) if series is not None else ("visit", appt) for appt, series in rows})


def _limit_rows() -> Any:
    """The client's undecided requests and those they made since `since`, flagged `recent`; built once."""
    a, t = AppointmentRow, TransitionRow
    own = exists().where(t.appointment_id == a.id, t.from_status.is_(None), t.actor == bindparam("actor")).correlate(a)
    recent = and_(a.created_at >= bindparam("since"), own)
    return select(a.id, a.series_id, a.status, a.replaces_id, recent.label("recent")).where(
        a.client_id == bindparam("client"), or_(a.status == Status.REQUESTED, recent)
    )


@functools.cache
def _count_send(dialect_name: str) -> Hot:
    """The Send counter's upsert, returning the new count; built once per dialect, when first used."""
    sends = ClientSendsRow.__table__
    when = sends.c.window_start.type
    at, cutoff = bindparam("now", type_=when), bindparam("cutoff", type_=when)
    expired = sends.c.window_start <= cutoff
    stmt = dialect_insert(dialect_name, sends).values(client_id=bindparam("client"), window_start=at, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[sends.c.client_id],
        # Both read the row as it was before this update (SQL evaluates a SET list against the old row).
        set_={
            "window_start": case((expired, at), else_=sends.c.window_start),
            "count": case((expired, 1), else_=sends.c.count + 1),
        },
    ).returning(sends.c.count)
    return Hot(stmt, [sends.c.count])


_SENDS = ClientSendsRow.__table__
_LIMIT_ROWS = _limit_rows()
_LOCK_CLIENT = update(ClientRow).where(ClientRow.id == bindparam("client")).values(updated_at=ClientRow.updated_at)
_LOCK_CLIENT_LOAD = _LOCK_CLIENT.returning(ClientRow)
_UNCOUNT_SEND = (
    update(_SENDS).where(_SENDS.c.client_id == bindparam("client"), _SENDS.c.count > 0).values(count=_SENDS.c.count - 1)
)
# Run past SQLAlchemy's execution on SQLite (scheduling.prepared): every Send runs them.
_HOT_LIMIT_ROWS = Hot(_LIMIT_ROWS, _LIMIT_ROWS.selected_columns)
_HOT_LOCK_CLIENT = Hot(_LOCK_CLIENT)
_HOT_UNCOUNT_SEND = Hot(_UNCOUNT_SEND)


class LimitQueries:
    """Mixed into the store's transaction class; `session` is the open transaction's session."""

    session: AsyncSession
    hot: Callable[[], Awaitable[CoreStatements | DriverStatements]]  # Tx.hot

    async def lock_client(self, client_id: int, *, load: bool = False) -> ClientRow | None:
        """Serialise one client's requests: call first in the transaction, held until it ends.

        A write to the client's row (it changes nothing: the write is the lock): PostgreSQL locks that row,
        SQLite takes its database write lock. With `load`, the client's row comes back with it (no second query
        for a transaction that needs it).
        """
        if not load:
            await (await self.hot()).run(_HOT_LOCK_CLIENT, {"client": client_id})
            return None
        return await self.session.scalar(
            _LOCK_CLIENT_LOAD, {"client": client_id}, execution_options={"populate_existing": True}
        )

    async def pending_requests(self, client_id: int) -> int:
        """The client's undecided requests (a series' visits asked for as one)."""
        stmt = select(AppointmentRow.id, AppointmentRow.series_id).where(
            AppointmentRow.client_id == client_id, AppointmentRow.status == Status.REQUESTED
        )
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

    async def limit_counts(self, client_id: int, since: datetime, *, moving: int | None = None) -> tuple[int, int]:
        """(undecided requests, requests the client made themselves since then) in one query.

        As pending_requests, with a pending request to move `moving` left out (it is replaced), and the
        requests of the day limit (a series' visits count as one request, whatever became of them).
        """
        params = {"client": client_id, "actor": f"client:{client_id}", "since": since}
        rows = await (await self.hot()).all(_HOT_LIMIT_ROWS, params)
        pending = [
            (r.id, r.series_id)
            for r in rows
            if r.status == Status.REQUESTED and (moving is None or r.replaces_id != moving)
        ]
        return _requests(pending), _requests([(r.id, r.series_id) for r in rows if r.recent])

    async def count_send(self, client_id: int, now: datetime, window: timedelta) -> int:
        """Count one Send in the client's current window (a new one once `window` has passed); returns the count.

        One upsert that returns the new count. Call after lock_client, which makes it one step for this client.
        """
        hot = _count_send(self.session.bind.dialect.name)
        row = await (await self.hot()).first(hot, {"client": client_id, "now": now, "cutoff": now - window})
        assert row is not None  # an upsert with RETURNING always answers its row
        return int(row[0])

    async def uncount_send(self, client_id: int) -> None:
        """One Send fewer in the client's current window (never below none)."""
        await (await self.hot()).run(_HOT_UNCOUNT_SEND, {"client": client_id})
