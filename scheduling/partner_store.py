"""Partner bookings in the database: clients by the partner's reference, bookings, and their change events."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from scheduling.db import (
    AppointmentRow,
    ClientRow,
    PartnerBookingRow,
    PartnerClientRow,
    PartnerEventRow,
    dialect_insert,
)
from scheduling.model import Status
from scheduling.queue import claim_queue, queue_done, queue_failed

# The transition reason that makes a cancellation a refusal (the specialist used the partner's refusal window).
REFUSED = "refused by the specialist"


def iso(value: datetime) -> str:
    """An instant as ISO 8601 in UTC with a Z, the API's one time format."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def partner_status(appt: AppointmentRow, booking: PartnerBookingRow) -> str:
    """The status a partner sees: the appointment's, with a refusal told apart from a cancellation."""
    if booking.refused_at is not None:
        return "refused"
    return str(Status(appt.status))


def booking_view(appt: AppointmentRow, booking: PartnerBookingRow) -> dict[str, Any]:
    """A partner booking as the API and the webhooks show it: no client data but the partner's own reference."""
    return {
        "id": booking.public_id,
        "status": partner_status(appt, booking),
        "service": appt.service_id,
        "specialist": appt.specialist_id,
        "location": appt.location_id,
        "channel": appt.channel,
        "start": iso(appt.start),
        "end": iso(appt.end),
        "client_ref": booking.client_ref,
        "created_at": iso(booking.created_at),
        "updated_at": iso(appt.updated_at),
        "refusal_until": iso(booking.refusal_until),
    }


def change_view(event: PartnerEventRow) -> dict[str, Any]:
    """One change as the feed lists it and a webhook posts it; `cursor` orders them."""
    return {"cursor": event.id, "event": event.event, "at": iso(event.created_at), "booking": event.payload}


class PartnerTx:
    """The partner queries of one open transaction (reached as `tx.partners`)."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def client_for(
        self, partner_id: str, client_ref: str, *, name: str, phone: str, email: str | None, at: datetime
    ) -> int:
        """The client row of a partner's client reference, created or updated with the details given."""
        link = await self.session.scalar(
            select(PartnerClientRow).where(
                PartnerClientRow.partner_id == partner_id, PartnerClientRow.client_ref == client_ref
            )
        )
        if link is not None:
            await self.session.execute(
                update(ClientRow)
                .where(ClientRow.id == link.client_id)
                .values(name=name, phone=phone, email=email, updated_at=at)
                .execution_options(synchronize_session=False)
            )
            return link.client_id
        client = ClientRow(name=name, phone=phone, email=email, created_at=at, updated_at=at)
        self.session.add(client)
        await self.session.flush()
        linked = await self.session.execute(
            dialect_insert(self.session.bind.dialect.name, PartnerClientRow)
            .values(partner_id=partner_id, client_ref=client_ref, client_id=client.id)
            .on_conflict_do_nothing()
        )
        if linked.rowcount == 1:
            return client.id
        # A concurrent request linked this reference first: use its client, drop ours.
        await self.session.delete(client)
        existing = await self.session.scalar(
            select(PartnerClientRow.client_id).where(
                PartnerClientRow.partner_id == partner_id, PartnerClientRow.client_ref == client_ref
            )
        )
        assert existing is not None
        return existing

    async def add_booking(
        self,
        appt: AppointmentRow,
        *,
        partner_id: str,
        client_ref: str,
        idempotency_key: str | None,
        request_hash: str | None,
        refusal_until: datetime,
        at: datetime,
    ) -> PartnerBookingRow:
        """Make a just-created appointment the partner's; a reused idempotency key fails the transaction."""
        booking = PartnerBookingRow(
            appointment_id=appt.id,
            public_id=secrets.token_hex(12),
            partner_id=partner_id,
            client_ref=client_ref,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            created_at=at,
            refusal_until=refusal_until,
        )
        self.session.add(booking)
        await self.session.flush()
        set_committed_value(appt, "partner_booking", booking)
        await self._event(appt, booking, "confirmed", at)
        return booking

    async def booking(self, appointment_id: int) -> PartnerBookingRow | None:
        return await self.session.get(PartnerBookingRow, appointment_id, populate_existing=True)

    async def by_public_id(self, partner_id: str, public_id: str) -> tuple[AppointmentRow, PartnerBookingRow] | None:
        """One of the partner's bookings; another partner's id finds nothing."""
        return await self._one(PartnerBookingRow.public_id == public_id, partner_id)

    async def by_idempotency_key(self, partner_id: str, key: str) -> tuple[AppointmentRow, PartnerBookingRow] | None:
        return await self._one(PartnerBookingRow.idempotency_key == key, partner_id)

    async def _one(self, condition: Any, partner_id: str) -> tuple[AppointmentRow, PartnerBookingRow] | None:
        row = (
            await self.session.execute(
                select(AppointmentRow, PartnerBookingRow)
                .join(PartnerBookingRow, PartnerBookingRow.appointment_id == AppointmentRow.id)
                .where(condition, PartnerBookingRow.partner_id == partner_id)
                .execution_options(populate_existing=True)
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def _stamp(self, booking: PartnerBookingRow, column: str, at: datetime) -> None:
        await self.session.execute(
            update(PartnerBookingRow)
            .where(PartnerBookingRow.appointment_id == booking.appointment_id)
            .values({column: at})
            .execution_options(synchronize_session=False)
        )
        set_committed_value(booking, column, at)

    async def mark_refused(self, booking: PartnerBookingRow, at: datetime) -> None:
        await self._stamp(booking, "refused_at", at)

    async def mark_partner_cancelled(self, booking: PartnerBookingRow, at: datetime) -> None:
        await self._stamp(booking, "partner_cancelled_at", at)

    async def claim_partner_cancellations(self, at: datetime) -> list[AppointmentRow]:
        """Bookings the partner cancelled that the specialist has not been told of, each claimed once."""
        return await self._claim(
            PartnerBookingRow.partner_cancelled_at.is_not(None) & PartnerBookingRow.cancel_told_at.is_(None),
            "cancel_told_at",
            at,
        )

    async def record_change(
        self, appt: AppointmentRow, at: datetime, *, reason: str | None = None, moved: bool = False
    ) -> None:
        """Queue the partner's notice of a status change or move, if the appointment is a partner booking."""
        booking = await self.booking(appt.id)
        if booking is None:
            return
        if moved:
            event = "moved"
        elif reason == REFUSED:
            event = "refused"
        else:
            event = str(Status(appt.status))
        await self._event(appt, booking, event, at)

    async def _event(self, appt: AppointmentRow, booking: PartnerBookingRow, event: str, at: datetime) -> None:
        self.session.add(
            PartnerEventRow(
                partner_id=booking.partner_id,
                appointment_id=appt.id,
                event=event,
                payload=booking_view(appt, booking),
                created_at=at,
                attempts=0,
                next_attempt_at=at,
            )
        )
        await self.session.flush()

    async def changes(self, partner_id: str, after: int, limit: int) -> list[PartnerEventRow]:
        """The partner's change events after a cursor (an event id), oldest first."""
        rows = await self.session.scalars(
            select(PartnerEventRow)
            .where(PartnerEventRow.partner_id == partner_id, PartnerEventRow.id > after)
            .order_by(PartnerEventRow.id)
            .limit(limit)
        )
        return list(rows)

    async def claim_notices(self, at: datetime) -> list[AppointmentRow]:
        """Partner bookings the specialist has not been told of yet, each claimed so only one process tells."""
        return await self._claim(PartnerBookingRow.notified_at.is_(None), "notified_at", at)

    async def claim_closed_refusals(self, at: datetime) -> list[AppointmentRow]:
        """Told partner bookings whose refusal window has passed and whose Refuse button is still shown."""
        return await self._claim(
            PartnerBookingRow.notified_at.is_not(None)
            & PartnerBookingRow.notice_closed_at.is_(None)
            & (PartnerBookingRow.refusal_until <= at),
            "notice_closed_at",
            at,
        )

    async def _claim(self, condition: Any, column: str, at: datetime) -> list[AppointmentRow]:
        """Stamp `column` on the bookings matching `condition` in one statement: whoever stamps first owns them."""
        # Read first: on SQLite an UPDATE takes the write lock even when it matches nothing.
        if not await self.session.scalar(select(exists().where(condition))):
            return []
        ids = list(
            await self.session.scalars(
                update(PartnerBookingRow)
                .where(condition)
                .values({column: at})
                .returning(PartnerBookingRow.appointment_id)
                .execution_options(synchronize_session=False)
            )
        )
        return await self._appointments(ids)

    async def _appointments(self, ids: list[int]) -> list[AppointmentRow]:
        if not ids:
            return []
        rows = await self.session.scalars(
            select(AppointmentRow)
            .where(AppointmentRow.id.in_(ids))
            .order_by(AppointmentRow.id)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    async def visits(self, partner_id: str, start: datetime, end: datetime) -> list[AppointmentRow]:
        """The partner's completed and no-show visits starting in [start, end), by specialist and start."""
        rows = await self.session.scalars(
            select(AppointmentRow)
            .join(PartnerBookingRow, PartnerBookingRow.appointment_id == AppointmentRow.id)
            .where(
                PartnerBookingRow.partner_id == partner_id,
                AppointmentRow.status.in_([Status.COMPLETED, Status.NO_SHOW]),
                AppointmentRow.start >= start,
                AppointmentRow.start < end,
            )
            .order_by(AppointmentRow.specialist_id, AppointmentRow.start, AppointmentRow.id)
        )
        return list(rows)

    async def claim_deliveries(self, now: datetime, *, limit: int, lease: timedelta) -> list[PartnerEventRow]:
        """Lease due webhook deliveries to this worker, oldest first and one at a time per booking."""
        return await claim_queue(self.session, PartnerEventRow, now, limit=limit, lease=lease)

    async def delivered(self, event_id: int, at: datetime) -> None:
        await queue_done(self.session, PartnerEventRow, event_id, at)

    async def delivery_failed(self, event_id: int, at: datetime, error: str) -> datetime:
        return await queue_failed(self.session, PartnerEventRow, event_id, at, error)
