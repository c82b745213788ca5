"""Changes staff make to an appointment: move, cancel, reassign, flags, notes, delete (clients' own: changes.py)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduling.booking import AlreadyDecided, BookingService
from scheduling.lifecycle import InvalidTransition
from scheduling.model import ACTIVE_STATUSES, PENDING_STATUSES, Channel, Flag, Status
from scheduling.staff import Check, Choice, NotAllowed, Staff, check_time, judge, require_staff
from scheduling.store import AppointmentRow, StaffNoteRow, Tx
from scheduling.visits import NeedsDecision, flags_text, parse_flags

NOTE_MAX_CHARS = 2000
REASON_MAX_CHARS = 500


class Moved(Exception):
    """Someone else changed the appointment's time meanwhile; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Move:
    """The result of a staff move: the appointment at its new time, and where it was."""

    appointment: AppointmentRow
    old_start: datetime
    tell: bool
    reason: str | None


def _choice(appt: AppointmentRow, start: datetime) -> Choice:
    """The appointment at another time, with its own specialist, service, place and way of meeting."""
    return Choice(appt.specialist_id, appt.service_id, appt.location_id, Channel(appt.channel), start, appt)


class StaffChanges:
    """Every change staff make to an existing appointment, checked against role and lifecycle."""

    def __init__(self, booking: BookingService):
        self.booking = booking

    @property
    def practice(self):  # type: ignore[no-untyped-def]
        return self.booking.practice

    async def _locked(self, tx: Tx, appointment_id: int, telegram_id: int) -> tuple[AppointmentRow, Staff]:
        appt = await tx.get_appointment(appointment_id, for_update=True)
        if appt is None or appt.status == Status.DELETED:
            raise NotAllowed(appointment_id)
        return appt, require_staff(self.practice, telegram_id, appt)

    async def load(self, appointment_id: int, telegram_id: int) -> tuple[AppointmentRow, Staff]:
        """An appointment this staff member may act on; raises NotAllowed otherwise."""
        async with self.booking.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id)
        if appt is None or appt.status == Status.DELETED:
            raise NotAllowed(appointment_id)
        staff = require_staff(self.practice, telegram_id)
        if not staff.may_act(appt) and appt.reassign_to != staff.own:
            raise NotAllowed(appointment_id)
        return appt, staff

    # --- moving -------------------------------------------------------------------------------------

    async def check_move(self, appointment_id: int, telegram_id: int, start: datetime) -> Check:
        appt, _ = await self.load(appointment_id, telegram_id)
        check, _events, _unchecked = await check_time(self.booking, _choice(appt, start))
        return check

    async def move(
        self,
        appointment_id: int,
        telegram_id: int,
        start: datetime,
        *,
        accepted: Collection[str] = (),
        tell: bool = True,
        reason: str | None = None,
    ) -> Move:
        """Move an active appointment to `start` (same UID, SEQUENCE+1); the calendar follows through the outbox.

        Raises NeedsDecision for a collision with another appointment or unaccepted warnings.
        """
        appt, staff = await self.load(appointment_id, telegram_id)
        if not staff.may_act(appt) or appt.group_id is not None:
            raise NotAllowed(appointment_id)  # a seat keeps its session's time: cancel it instead
        if appt.status not in ACTIVE_STATUSES:
            raise AlreadyDecided(Status(appt.status))
        check, events, unchecked = await check_time(self.booking, _choice(appt, start))
        if not check.accepted_by(accepted):
            raise NeedsDecision(check)
        end = start + timedelta(minutes=self.practice.service_by_id[appt.service_id].duration)
        reason = (reason or "").strip()[:REASON_MAX_CHARS] or None
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            await tx.lock_specialist(appt.specialist_id)
            current, staff = await self._locked(tx, appointment_id, telegram_id)
            if current.status not in ACTIVE_STATUSES:
                raise AlreadyDecided(Status(current.status))
            if current.start != appt.start:
                raise Moved(appointment_id)
            final = await judge(self.booking, tx, _choice(current, start), events, unchecked)
            if final.accepted_by(accepted):
                details = {"told": tell, **({"overridden": sorted(final.warnings)} if final.warnings else {})}
                if not await tx.move(current, start, end, actor=staff.actor, at=now, reason=reason, details=details):
                    raise Moved(appointment_id)
                if current.status in PENDING_STATUSES and current.expires_at and current.expires_at > start:
                    # A pending visit must still be answered before it begins.
                    await tx.set_appointment(current, at=now, expires_at=start)
                await tx.enqueue_sync(current.id, current.specialist_id, now)
        if not final.accepted_by(accepted):
            raise NeedsDecision(final)
        self.booking.wake_outbox()
        return Move(current, appt.start, tell, reason)

    # --- cancelling ---------------------------------------------------------------------------------

    async def cancel(
        self, appointment_id: int, telegram_id: int, *, tell: bool = True, reason: str | None = None
    ) -> AppointmentRow:
        """Cancel a request, proposal or confirmed visit on the practice's side; the event is removed."""
        reason = (reason or "").strip()[:REASON_MAX_CHARS] or None
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt, staff = await self._locked(tx, appointment_id, telegram_id)
            try:
                await tx.transition(
                    appt, Status.CANCELLED, actor=staff.actor, at=now, reason=reason, details={"told": tell}
                )
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            if appt.reassign_to:
                await tx.set_appointment(appt, at=now, reassign_to=None)
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
            # The client's undecided request to move this visit goes with it.
            move = (await tx.pending_moves([appt.id])).get(appt.id)
            if move is not None:
                why = "the appointment was cancelled"
                await tx.transition(move, Status.CANCELLED, actor=staff.actor, at=now, reason=why)
                await tx.enqueue_sync(move.id, move.specialist_id, now)
        self.booking.wake_outbox()
        return appt

    # --- reassigning --------------------------------------------------------------------------------

    async def colleagues(self, appointment_id: int, telegram_id: int) -> list[str]:
        """Specialists who offer the service at this location and are free at the appointment's time."""
        appt, staff = await self.load(appointment_id, telegram_id)
        # A seat goes where its session goes: one participant is never handed to someone else.
        if not staff.may_act(appt) or appt.status not in ACTIVE_STATUSES or appt.group_id is not None:
            return []
        free = []
        for spec in self.practice.specialists_for(appt.service_id, appt.location_id):
            if spec.id == appt.specialist_id:
                continue
            choice = Choice(spec.id, appt.service_id, appt.location_id, Channel(appt.channel), appt.start, appt)
            check, _events, _unchecked = await check_time(self.booking, choice)
            # Free means free: no collision, inside their schedule, and a calendar we could read.
            if not check.problems and not check.calendar_unchecked:
                free.append(spec.id)
        return free

    async def offer(self, appointment_id: int, telegram_id: int, colleague: str) -> AppointmentRow:
        """Ask a free colleague to take the appointment over; it stays held with its specialist until they decide."""
        if colleague not in await self.colleagues(appointment_id, telegram_id):
            raise NotAllowed(colleague)
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            await tx.lock_specialist(colleague)
            appt, staff = await self._locked(tx, appointment_id, telegram_id)
            if appt.status not in ACTIVE_STATUSES:
                raise AlreadyDecided(Status(appt.status))
            await tx.set_appointment(appt, at=now, reassign_to=colleague)
            await tx.record(appt, actor=staff.actor, at=now, details={"reassign_offered_to": colleague})
        return appt

    def _colleague_of(self, appt: AppointmentRow, telegram_id: int) -> str:
        spec = self.practice.specialist_by_id.get(appt.reassign_to or "")
        if spec is None or not (spec.telegram_id == telegram_id or telegram_id in self.practice.practice.admins):
            raise NotAllowed(appt.id)
        return spec.id

    async def take_over(self, appointment_id: int, telegram_id: int) -> tuple[AppointmentRow, str]:
        """The colleague accepts: the appointment (confirmed) and its event move to them; returns the old owner."""
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id, for_update=True)
            if appt is None or appt.reassign_to is None:
                raise AlreadyDecided(Status(appt.status) if appt else Status.DELETED)
            colleague = self._colleague_of(appt, telegram_id)
            if appt.status not in ACTIVE_STATUSES:
                raise AlreadyDecided(Status(appt.status))
            await tx.lock_specialist(colleague)
            old = appt.specialist_id
            actor = f"specialist:{telegram_id}"
            await tx.hand_over(appt, colleague, now)
            if appt.status != Status.CONFIRMED:
                await tx.transition(appt, Status.CONFIRMED, actor=actor, at=now)
            await tx.record(appt, actor=actor, at=now, details={"reassigned_from": old, "reassigned_to": colleague})
            # Removed from the first calendar, created in the colleague's.
            await tx.enqueue_sync(appt.id, old, now)
            await tx.enqueue_sync(appt.id, colleague, now)
        self.booking.wake_outbox()
        return appt, old

    async def refuse(self, appointment_id: int, telegram_id: int) -> AppointmentRow:
        """The colleague (or the one who asked) says no: the appointment stays where it is."""
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id, for_update=True)
            if appt is None or appt.reassign_to is None:
                raise AlreadyDecided(Status(appt.status) if appt else Status.DELETED)
            try:
                colleague = self._colleague_of(appt, telegram_id)
            except NotAllowed:
                require_staff(self.practice, telegram_id, appt)
                colleague = appt.reassign_to
            await tx.set_appointment(appt, at=now, reassign_to=None)
            await tx.record(appt, actor=f"specialist:{telegram_id}", at=now, details={"reassign_refused_by": colleague})
        return appt

    # --- flags, notes, delete -----------------------------------------------------------------------

    async def toggle_flag(self, appointment_id: int, telegram_id: int, flag: Flag) -> AppointmentRow:
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt, staff = await self._locked(tx, appointment_id, telegram_id)
            flags = set(parse_flags(appt.flags)) ^ {flag}
            await tx.set_appointment(appt, at=now, flags=flags_text(flags))
            await tx.record(appt, actor=staff.actor, at=now, details={"flag": str(flag), "on": flag in flags})
        return appt

    async def add_note(self, appointment_id: int, telegram_id: int, text: str) -> StaffNoteRow:
        text = text.strip()[:NOTE_MAX_CHARS]
        if not text:
            raise ValueError("empty note")
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt, staff = await self._locked(tx, appointment_id, telegram_id)
            return await tx.add_note(
                client_id=appt.client_id, appointment_id=appt.id, author=staff.actor, text=text, at=now
            )

    async def delete(self, appointment_id: int, telegram_id: int) -> AppointmentRow:
        """Admins only: the record loses what the client wrote and its event; the history keeps who and when."""
        now = self.booking.clock()
        async with self.booking.store.tx() as tx:
            appt, staff = await self._locked(tx, appointment_id, telegram_id)
            if not staff.admin:
                raise NotAllowed(appointment_id)
            try:
                await tx.transition(appt, Status.DELETED, actor=staff.actor, at=now)
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            scrubbed = {"note": None, "source": None, "decline_reason": None, "flags": "", "reassign_to": None}
            await tx.set_appointment(appt, at=now, **scrubbed)
            await tx.drop_notes(appt.id)
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.booking.wake_outbox()
        return appt
