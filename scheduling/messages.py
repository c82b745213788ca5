"""Messages between a client and their specialist about an appointment, and chat visits relayed both ways.

A message is stored only until it is delivered (never in a calendar); one that cannot be
delivered now is retried by the sweep, and given up after MAX_ATTEMPTS.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from scheduling.booking import BookingService
from scheduling.db import AppointmentRow, MessageRow
from scheduling.model import ACTIVE_STATUSES, Channel, Status

MAX_CHARS = 3000  # Telegram's 4096 less the heading that names the appointment
MAX_ATTEMPTS = 20
# After a visit, the two may still write to each other about it for this long.
AFTER_VISIT = timedelta(days=7)


class MessageNotAllowed(Exception):
    """The writer is not a party to this appointment, or it is long over or was called off."""


class Messages:
    """Who may write to whom about which appointment, and the queue of messages to deliver."""

    def __init__(self, booking: BookingService):
        self.booking = booking
        self.store = booking.store

    def open_for_messages(self, appt: AppointmentRow) -> bool:
        """Upcoming (requested or confirmed), or a visit that took place within the last week."""
        if appt.status in ACTIVE_STATUSES:
            return True
        held = appt.status in (Status.COMPLETED, Status.NO_SHOW)
        return held and self.booking.clock() <= appt.end + AFTER_VISIT

    async def write(
        self, appointment_id: int, text: str, *, client_id: int | None = None, telegram_id: int | None = None
    ) -> MessageRow:
        """Queue a message from the appointment's client (`client_id`) or its specialist or an admin (`telegram_id`).

        Raises MessageNotAllowed. The text is cut to MAX_CHARS (the caller says so).
        """
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id)
        if appt is None or not self.open_for_messages(appt):
            raise MessageNotAllowed(appointment_id)
        if client_id is not None:
            if appt.client_id != client_id:
                raise MessageNotAllowed(appointment_id)
            sender, to_client = f"client:{client_id}", False
        elif telegram_id is not None and self.booking.may_decide(appt, telegram_id):
            role = "admin" if telegram_id in self.booking.practice.practice.admins else "specialist"
            sender, to_client = f"{role}:{telegram_id}", True
        else:
            raise MessageNotAllowed(appointment_id)
        now = self.booking.clock()
        async with self.store.tx() as tx:
            row = MessageRow(
                appointment_id=appointment_id,
                to_client=to_client,
                sender=sender,
                text=text.strip()[:MAX_CHARS],
                relayed=self.in_chat_visit(appt, now),
                created_at=now,
                attempts=0,
            )
            tx.session.add(row)
            await tx.session.flush()
        return row

    def in_chat_visit(self, appt: AppointmentRow, now: datetime | None = None) -> bool:
        """Whether a confirmed chat visit is taking place right now."""
        now = now or self.booking.clock()
        return appt.channel == Channel.CHAT and appt.status == Status.CONFIRMED and appt.start <= now < appt.end

    async def chat_visit_of_client(self, client_id: int) -> AppointmentRow | None:
        """The client's chat visit taking place now, if any."""
        now = self.booking.clock()
        async with self.store.tx() as tx:
            appts = await tx.client_appointments(client_id, upcoming_from=now)
        return next((a for a in appts if self.in_chat_visit(a, now)), None)

    async def chat_visit_of_staff(self, telegram_id: int) -> AppointmentRow | None:
        """The one chat visit taking place now among those this person may act on (None if none, or several)."""
        ids = self.booking.staff_view(telegram_id) or []
        now = self.booking.clock()
        ongoing: list[AppointmentRow] = []
        async with self.store.tx() as tx:
            for spec_id in ids:
                ongoing += [a for a in await tx.active_appointments(spec_id, now, now + timedelta(seconds=1))]
        ongoing = [a for a in ongoing if self.in_chat_visit(a, now)]
        return ongoing[0] if len(ongoing) == 1 else None

    async def undelivered(self, created_before: datetime) -> list[MessageRow]:
        """Messages still waiting for delivery, oldest first."""
        async with self.store.tx() as tx:
            rows = await tx.session.scalars(
                select(MessageRow).where(MessageRow.created_at <= created_before).order_by(MessageRow.id)
            )
            return list(rows)

    async def delivered(self, message_id: int) -> bool:
        """Forget a delivered message; False if another process delivered (and forgot) it first."""
        async with self.store.tx() as tx:
            result = await tx.session.execute(delete(MessageRow).where(MessageRow.id == message_id))
            return bool(result.rowcount)

    async def failed(self, message_id: int) -> bool:
        """Count a failed delivery; False when it is given up (and forgotten)."""
        async with self.store.tx() as tx:
            attempts = await tx.session.scalar(
                update(MessageRow)
                .where(MessageRow.id == message_id)
                .values(attempts=MessageRow.attempts + 1)
                .returning(MessageRow.attempts)
            )
            if attempts is None or attempts < MAX_ATTEMPTS:
                return attempts is not None
            await tx.session.execute(delete(MessageRow).where(MessageRow.id == message_id))
            return False
