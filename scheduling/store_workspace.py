"""Queries of the specialist's workspace: client records, staff notes, flags, searches, reassignment."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from scheduling.db import AppointmentRow, ClientRow, ConsentRow, StaffNoteRow, TransitionRow
from scheduling.model import Status

SEARCH_LIMIT = 10


def _like(text: str) -> str:
    """A LIKE pattern that matches `text` anywhere, with the wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class WorkspaceQueries:
    """Mixed into the store's transaction class; `session` is the open transaction's session."""

    session: AsyncSession

    # client records

    async def add_client_record(
        self, *, name: str, phone: str | None, email: str | None, created_by: str, at: datetime
    ) -> ClientRow:
        """A client the practice enters itself (no Telegram account known yet)."""
        client = ClientRow(name=name, phone=phone, email=email, created_by=created_by, created_at=at, updated_at=at)
        self.session.add(client)
        await self.session.flush()
        return client

    async def find_clients(self, text: str, *, limit: int = SEARCH_LIMIT) -> list[ClientRow]:
        """Clients whose name contains the text, or whose phone number contains its digits."""
        digits = "".join(ch for ch in text if ch.isdigit())
        match = [func.lower(ClientRow.name).like(_like(text.lower()), escape="\\")]
        if len(digits) >= 3:
            match.append(ClientRow.phone.like(_like(digits), escape="\\"))
        rows = await self.session.scalars(
            select(ClientRow)
            .where(ClientRow.name.is_not(None), or_(*match))
            .order_by(ClientRow.name, ClientRow.id)
            .limit(limit)
        )
        return list(rows)

    async def unlinked_records(self) -> list[ClientRow]:
        """Records the practice created for clients who have not reached the bot yet."""
        rows = await self.session.scalars(
            select(ClientRow).where(ClientRow.telegram_id.is_(None), ClientRow.created_by.is_not(None))
        )
        return list(rows)

    async def merge_client(self, record: ClientRow, into: ClientRow, at: datetime) -> None:
        """Move the record's appointments, notes and consents to `into`, fill its gaps, and drop the record."""
        for table in (AppointmentRow, StaffNoteRow, ConsentRow):
            await self.session.execute(
                update(table)
                .where(table.client_id == record.id)
                .values(client_id=into.id)
                .execution_options(synchronize_session=False)
            )
        gaps = {f: getattr(record, f) for f in ("phone", "email") if getattr(into, f) is None and getattr(record, f)}
        await self.session.execute(
            update(ClientRow)
            .where(ClientRow.id == into.id)
            .values(**gaps, created_by=into.created_by or record.created_by, updated_at=at)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            delete(ClientRow).where(ClientRow.id == record.id).execution_options(synchronize_session=False)
        )
        await self.session.flush()

    # appointments as staff see them

    async def staff_appointments(
        self,
        specialist_ids: Collection[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        client_ids: Collection[int] | None = None,
        statuses: Collection[Status] | None = None,
    ) -> list[AppointmentRow]:
        """Appointments of these specialists (or offered to them), optionally in a time range, for some clients."""
        stmt = select(AppointmentRow).where(
            or_(AppointmentRow.specialist_id.in_(specialist_ids), AppointmentRow.reassign_to.in_(specialist_ids)),
            AppointmentRow.status != Status.DELETED,
        )
        if start is not None:
            stmt = stmt.where(AppointmentRow.end > start)
        if end is not None:
            stmt = stmt.where(AppointmentRow.start < end)
        if client_ids is not None:
            stmt = stmt.where(AppointmentRow.client_id.in_(client_ids))
        if statuses is not None:
            stmt = stmt.where(AppointmentRow.status.in_(statuses))
        rows = await self.session.scalars(stmt.order_by(AppointmentRow.start, AppointmentRow.id))
        return list(rows)

    async def has_seen_client(self, client_id: int, specialist_ids: Collection[str]) -> bool:
        """Whether the client has any appointment with these specialists."""
        found = await self.session.scalar(
            select(AppointmentRow.id)
            .where(AppointmentRow.client_id == client_id, AppointmentRow.specialist_id.in_(specialist_ids))
            .limit(1)
        )
        return found is not None

    async def set_appointment(self, appt: AppointmentRow, *, at: datetime, **values: Any) -> None:
        """Change plain fields of an appointment (flags, reassignment, scrubbed texts), keeping the object current."""
        await self.session.execute(
            update(AppointmentRow)
            .where(AppointmentRow.id == appt.id)
            .values(**values, updated_at=at)
            .execution_options(synchronize_session=False)
        )
        for name, value in {**values, "updated_at": at}.items():
            set_committed_value(appt, name, value)

    async def hand_over(self, appt: AppointmentRow, specialist_id: str, at: datetime) -> None:
        """The appointment now belongs to `specialist_id` (same identity, SEQUENCE+1)."""
        sequence = await self.session.scalar(
            update(AppointmentRow)
            .where(AppointmentRow.id == appt.id)
            .values(specialist_id=specialist_id, reassign_to=None, sequence=AppointmentRow.sequence + 1, updated_at=at)
            .returning(AppointmentRow.sequence)
            .execution_options(synchronize_session=False)
        )
        for name, value in (("specialist_id", specialist_id), ("reassign_to", None), ("sequence", sequence)):
            set_committed_value(appt, name, value)

    async def record(self, appt: AppointmentRow, *, actor: str, at: datetime, details: dict[str, Any]) -> None:
        """A history row for a change that keeps the status (a flag, a reassignment asked or refused)."""
        status = Status(appt.status)
        self.session.add(
            TransitionRow(
                appointment_id=appt.id, from_status=status, to_status=status, actor=actor, at=at, details=details
            )
        )
        await self.session.flush()

    # staff notes

    async def add_note(
        self, *, client_id: int, appointment_id: int | None, author: str, text: str, at: datetime
    ) -> StaffNoteRow:
        note = StaffNoteRow(client_id=client_id, appointment_id=appointment_id, author=author, text=text, at=at)
        self.session.add(note)
        await self.session.flush()
        return note

    async def notes(self, *, client_id: int | None = None, appointment_id: int | None = None) -> list[StaffNoteRow]:
        """Staff notes of one appointment, or all of one client's, oldest first."""
        stmt = select(StaffNoteRow)
        if appointment_id is not None:
            stmt = stmt.where(StaffNoteRow.appointment_id == appointment_id)
        if client_id is not None:
            stmt = stmt.where(StaffNoteRow.client_id == client_id)
        rows = await self.session.scalars(stmt.order_by(StaffNoteRow.at, StaffNoteRow.id))
        return list(rows)

    async def drop_notes(self, appointment_id: int) -> None:
        await self.session.execute(
            delete(StaffNoteRow)
            .where(StaffNoteRow.appointment_id == appointment_id)
            .execution_options(synchronize_session=False)
        )
