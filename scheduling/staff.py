"""Who may act in the specialist's workspace, and the conflict check staff see before saving a time."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduling.booking import BookingService
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Practice
from scheduling.conflicts import Problem, ProblemKind, check_appointment
from scheduling.model import Busy, Channel
from scheduling.store import AppointmentRow, Tx

# The warning a staff member accepts when the calendar could not be read to check the time.
UNCHECKED = "calendar_unchecked"


class NotAllowed(Exception):
    """The person is not staff, or not allowed to act on this appointment or record."""


@dataclass(frozen=True, slots=True)
class Staff:
    """A practice member acting in Telegram: an admin (everyone's appointments) or a specialist (their own)."""

    telegram_id: int
    admin: bool
    specialist_ids: tuple[str, ...]  # whose appointments they see and act on
    own: str | None  # their own specialist id, if they are one

    @property
    def actor(self) -> str:
        return f"{'admin' if self.admin else 'specialist'}:{self.telegram_id}"

    def may_act(self, appt: AppointmentRow) -> bool:
        return self.admin or appt.specialist_id in self.specialist_ids


def staff_member(practice: Practice, telegram_id: int) -> Staff | None:
    """The staff member with this Telegram id, or None for anyone else."""
    own = next((s.id for s in practice.specialists if s.telegram_id and s.telegram_id == telegram_id), None)
    admin = telegram_id in practice.practice.admins
    if admin:
        return Staff(telegram_id, True, tuple(s.id for s in practice.specialists), own)
    if own is not None:
        return Staff(telegram_id, False, (own,), own)
    return None


def require_staff(practice: Practice, telegram_id: int, appt: AppointmentRow | None = None) -> Staff:
    """The staff member, checked against the appointment when one is given; raises NotAllowed."""
    staff = staff_member(practice, telegram_id)
    if staff is None or (appt is not None and not staff.may_act(appt)):
        raise NotAllowed(telegram_id)
    return staff


@dataclass(frozen=True)
class Check:
    """Every problem with a time a staff member chose, and which of them they may override."""

    problems: list[Problem]
    # The practice's own appointments the time collides with, by uid: these block, they are never overridden.
    appointments: dict[str, AppointmentRow] = field(default_factory=dict)
    calendar_unchecked: bool = False

    @property
    def blocking(self) -> list[Problem]:
        return [
            p
            for p in self.problems
            if p.kind == ProblemKind.SERVICE_NOT_OFFERED
            or (p.kind == ProblemKind.COLLISION and p.busy is not None and p.busy.uid in self.appointments)
        ]

    @property
    def warnings(self) -> frozenset[str]:
        """What "Save anyway" accepts: the problem kinds, and the unread calendar."""
        kinds = {str(p.kind) for p in self.problems if p not in self.blocking}
        return frozenset(kinds | ({UNCHECKED} if self.calendar_unchecked else set()))

    def accepted_by(self, accepted: Collection[str]) -> bool:
        """True when nothing blocks and every warning is one the staff member already accepted."""
        return not self.blocking and self.warnings <= set(accepted)


@dataclass(frozen=True, slots=True)
class Choice:
    """A time a staff member chose for a visit; `ignore` is the appointment being moved (not a collision)."""

    specialist_id: str
    service_id: str
    location_id: str
    channel: Channel | None
    start: datetime
    ignore: AppointmentRow | None = None

    def window(self, practice: Practice) -> tuple[datetime, datetime]:
        """A day either side of the visit: every event or appointment that can touch it."""
        end = self.start + timedelta(minutes=practice.service_by_id[self.service_id].duration)
        return self.start - timedelta(days=1), end + timedelta(days=1)


async def read_calendar(booking: BookingService, choice: Choice) -> tuple[list[Busy], bool]:
    """The specialist's calendar events around the time (fresh, else cached); True when neither could be read."""
    window = choice.window(booking.practice)
    try:
        return await booking.calendar.busy(choice.specialist_id, *window, fresh=True), False
    except CalendarUnavailable:
        try:
            return await booking.calendar.busy(choice.specialist_id, *window), False
        except CalendarUnavailable:
            return [], True


async def judge(booking: BookingService, tx: Tx, choice: Choice, events: list[Busy], unchecked: bool) -> Check:
    """The check against calendar events already read and the practice's appointments read in `tx`.

    Called once to show the problems, and again under the specialist's lock right before writing.
    """
    window = choice.window(booking.practice)
    ours = await tx.known_uids(choice.specialist_id, *window)
    active = await tx.active_appointments(choice.specialist_id, *window)
    others = [a for a in active if choice.ignore is None or a.id != choice.ignore.id]
    # A group session with room left at exactly this time, service and place takes one more seat.
    busy = [b for b in events if b.uid not in ours] + booking.busy_for(
        choice.specialist_id, choice.service_id, choice.location_id, choice.start, others
    )
    problems = check_appointment(
        booking.practice,
        specialist_id=choice.specialist_id,
        service_id=choice.service_id,
        location_id=choice.location_id,
        start=choice.start,
        busy=busy,
        now=booking.clock(),
        channel=choice.channel,
    )
    return Check(problems, {a.uid: a for a in others}, unchecked)


async def check_time(booking: BookingService, choice: Choice) -> tuple[Check, list[Busy], bool]:
    """Check a time against the rules, the calendar and the practice's appointments.

    Returns the check and what was read of the calendar, so the save under the lock can judge again.
    """
    events, unchecked = await read_calendar(booking, choice)
    async with booking.store.tx() as tx:
        return await judge(booking, tx, choice, events, unchecked), events, unchecked
