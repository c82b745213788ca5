"""Changes a client makes after booking: moving a visit to another time, within the specialist's policy."""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduling.booking import AlreadyDecided, BookingService, CancellationClosed, NotAllowed, Request
from scheduling.lifecycle import InvalidTransition
from scheduling.model import Channel, Status
from scheduling.store import AppointmentRow


def movable(appt: AppointmentRow) -> bool:
    """Whether the client is offered Move for this visit; past the deadline the tap explains the policy.

    A visit of a series moves alone (an override of the series); a seat in a group session is not moved
    (the session keeps its time): the client cancels it and books another.
    """
    return appt.status == Status.CONFIRMED and appt.replaces_id is None and appt.group_id is None


class ChangeService:
    """Moving appointments at the client's request; the booking rules themselves stay in BookingService."""

    def __init__(self, booking: BookingService):
        self.booking = booking

    def deadline(self, appt: AppointmentRow) -> datetime:
        """Until when the client may move or cancel the visit free of charge."""
        spec = self.booking.practice.specialist_by_id[appt.specialist_id]
        return appt.start - timedelta(hours=spec.cancellation.free_until_hours)

    def may_move(self, appt: AppointmentRow) -> bool:
        """A movable visit (see `movable`), until the deadline."""
        return movable(appt) and self.booking.clock() <= self.deadline(appt)

    def move_specialists(self, appt: AppointmentRow) -> list[str] | None:
        """Who the visit may move to: its specialist, or anyone offering it for a "first available" booking."""
        if not appt.first_available:
            return [appt.specialist_id]
        return [s.id for s in self.booking.practice.specialists_for(appt.service_id, appt.location_id)]

    async def request_move(
        self, appointment_id: int, client_id: int, *, specialist_id: str, start: datetime, channel: Channel
    ) -> AppointmentRow:
        """Ask the specialist to move a confirmed visit; the old time stays held and valid until they approve.

        The request is booked like a new one (SlotTaken, InvalidRequest); an earlier, still undecided
        request to move the same visit is withdrawn once this one is in. Raises NotAllowed for someone
        else's visit, AlreadyDecided when it is no longer confirmed, CancellationClosed after the deadline.
        """
        async with self.booking.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id)
        if appt is None or appt.client_id != client_id:
            raise NotAllowed(appointment_id)
        if appt.status != Status.CONFIRMED or appt.replaces_id is not None:
            raise AlreadyDecided(Status(appt.status))
        if not self.may_move(appt):
            raise CancellationClosed(appointment_id)
        allowed = self.move_specialists(appt) or []
        if specialist_id not in allowed:
            raise NotAllowed(appointment_id)
        async with self.booking.store.tx() as tx:
            earlier = (await tx.pending_moves([appt.id])).get(appt.id)
        move = await self.booking.request(
            Request(
                client_id=client_id,
                service_id=appt.service_id,
                location_id=appt.location_id,
                specialist_id=specialist_id,
                channel=channel,
                start=start,
                note=appt.note or "",
                source=appt.source,
                first_available=appt.first_available,
                replaces_id=appt.id,
            )
        )
        if earlier is not None:
            await self.withdraw_move(earlier.id, client_id)
        return move

    async def withdraw_move(self, move_id: int, client_id: int) -> AppointmentRow:
        """The client takes back an undecided request to move: its held time is free, the visit stays."""
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            move = await tx.get_appointment(move_id, for_update=True)
            if move is None or move.client_id != client_id or move.replaces_id is None:
                raise NotAllowed(move_id)
            try:
                await tx.transition(move, Status.CANCELLED, actor=f"client:{client_id}", at=now, reason="withdrawn")
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            await tx.enqueue_sync(move.id, move.specialist_id, now)
        self.booking.wake_outbox()
        return move
