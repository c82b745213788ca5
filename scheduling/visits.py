"""Visits the practice books on a client's behalf, and the client's answer to a proposed visit."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduling.booking import AlreadyDecided, BookingService, Lapsed, too_late
from scheduling.lifecycle import InvalidTransition
from scheduling.model import ACTIVE_STATUSES, Channel, Flag, Status
from scheduling.staff import Check, Choice, NotAllowed, Staff, check_time, judge
from scheduling.store import AppointmentRow

STAFF_SOURCE = "staff"


class NeedsDecision(Exception):
    """The time has problems: blocking ones, or warnings the staff member has not accepted yet."""

    def __init__(self, check: Check):
        super().__init__(", ".join(sorted(check.warnings)))
        self.check = check


@dataclass(frozen=True, slots=True)
class Visit:
    """What a staff member chose in /new."""

    client_id: int
    specialist_id: str
    service_id: str
    location_id: str
    channel: Channel
    start: datetime
    flags: frozenset[Flag] = frozenset()

    @property
    def choice(self) -> Choice:
        return Choice(self.specialist_id, self.service_id, self.location_id, self.channel, self.start)


def flags_text(flags: Collection[Flag]) -> str:
    """Flags as stored: known values, sorted, comma-separated."""
    return ",".join(sorted(str(Flag(f)) for f in flags))


def parse_flags(text: str | None) -> frozenset[Flag]:
    return frozenset(Flag(f) for f in (text or "").split(",") if f in Flag.__members__.values())


class StaffBooking:
    """Booking on a client's behalf: the conflict check, saving (anyway), and the client's answer."""

    def __init__(self, booking: BookingService):
        self.booking = booking

    async def check(self, visit: Visit) -> Check:
        check, _events, _unchecked = await check_time(self.booking, visit.choice)
        return check

    async def book(self, staff: Staff, visit: Visit, accepted: Collection[str] = ()) -> AppointmentRow:
        """Save the visit: proposed to a client who uses the bot, confirmed for one who does not.

        Raises NeedsDecision when the time collides with another appointment of the practice, or has
        warnings not in `accepted`; what was accepted is recorded in the history.
        """
        practice = self.booking.practice
        spec = practice.specialist_by_id.get(visit.specialist_id)
        service = practice.service_by_id.get(visit.service_id)
        if spec is None or service is None or visit.location_id not in practice.location_by_id:
            raise NotAllowed(visit.specialist_id)
        if not staff.admin and visit.specialist_id not in staff.specialist_ids:
            raise NotAllowed(visit.specialist_id)
        check, events, unchecked = await check_time(self.booking, visit.choice)
        if not check.accepted_by(accepted):
            raise NeedsDecision(check)
        end = visit.start + timedelta(minutes=service.duration)
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            await tx.lock_specialist(visit.specialist_id)
            client = await tx.get_client(visit.client_id)
            if client is None:
                raise NotAllowed(visit.client_id)
            final = await judge(self.booking, tx, visit.choice, events, unchecked)
            group = None
            if final.accepted_by(accepted) and service.seats > 1:
                # A seat in the group session at that time (made if none): never a second one for the same client.
                group = await tx.group_at(
                    specialist_id=visit.specialist_id,
                    service_id=visit.service_id,
                    location_id=visit.location_id,
                    start=visit.start,
                    end=end,
                    at=now,
                )
                if any(
                    s.client_id == client.id and s.status in ACTIVE_STATUSES for s in await tx.group_seats(group.id)
                ):
                    raise NotAllowed(visit.client_id)
            if final.accepted_by(accepted):
                # A client who uses the bot confirms the visit; a past visit is only being recorded.
                proposed = client.telegram_id is not None and visit.start > now
                status = Status.PROPOSED if proposed else Status.CONFIRMED
                appt = await tx.add_appointment(
                    client_id=client.id,
                    specialist_id=visit.specialist_id,
                    service_id=visit.service_id,
                    location_id=visit.location_id,
                    channel=str(visit.channel),
                    start=visit.start,
                    end=end,
                    note=None,
                    source=STAFF_SOURCE,
                    expires_at=self.booking.expiry(now, visit.start) if proposed else None,
                    actor=staff.actor,
                    at=now,
                    status=status,
                    flags=flags_text(visit.flags),
                    details={"overridden": sorted(final.warnings)} if final.warnings else None,
                    group=group,
                )
                await tx.enqueue_sync(appt.id, visit.specialist_id, now)
        if not final.accepted_by(accepted):
            raise NeedsDecision(final)
        self.booking.wake_outbox()
        return appt

    async def answer(self, appointment_id: int, client_id: int, accept: bool) -> AppointmentRow:
        """The client accepts (confirmed) or declines a visit the practice proposed."""
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id, for_update=True)
            if appt is None or appt.client_id != client_id:
                raise NotAllowed(appointment_id)
            if appt.status != Status.PROPOSED:
                raise AlreadyDecided(Status(appt.status))
            if accept and too_late(appt, now):
                raise Lapsed()
            target = Status.CONFIRMED if accept else Status.DECLINED
            try:
                await tx.transition(appt, target, actor=f"client:{client_id}", at=now)
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.booking.wake_outbox()
        return appt
