"""The booking service: browse free time, request, approve, decline, expire and cancel appointments."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from scheduling import limits
from scheduling.calendar import CalendarPort, CalendarUnavailable
from scheduling.calendar_sync import CalendarSync
from scheduling.config import Practice, Service
from scheduling.conflicts import Problem, ProblemKind, check_appointment
from scheduling.lifecycle import InvalidTransition
from scheduling.model import ACTIVE_STATUSES, PENDING_STATUSES, Busy, Channel, Seats, Slot, Status
from scheduling.slots import CLIENT_RULES, Rules, days_with_slots, free_slots, last_bookable_day
from scheduling.store import AppointmentRow, Store, Tx

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")

# The booking path's calendar work: how long a fresh read may take, and how many requests of one
# specialist may wait for it (the others answer from the cache at once, so a slow server never fills
# the bot's update slots).
CALENDAR_TIME_LIMIT = 4.0
CALENDAR_WAITERS = 4
# Requests of one specialist worked on at once (`turn`): the readers above and a few answered from the cache.
# A crowd for one specialist queues here, and everyone else's work is not shared out among the crowd.
TURNS = CALENDAR_WAITERS + 4

# Problems that mean "someone else got this time" rather than "this request was never valid".
_TAKEN = frozenset({ProblemKind.COLLISION, ProblemKind.LEAD_TIME, ProblemKind.PAST})


def utcnow() -> datetime:
    return datetime.now(UTC)


class SlotTaken(Exception):
    """The chosen time is no longer free; `remaining` holds the day's other free slots."""

    def __init__(self, remaining: list[Slot]):
        super().__init__("slot taken")
        self.remaining = remaining


class InvalidRequest(Exception):
    """A request that could never be booked (wrong service, channel, grid...): forged or stale input."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__(", ".join(p.kind for p in problems))
        self.problems = list(problems)


class NotAllowed(Exception):
    """The person acting is neither the appointment's specialist nor a practice admin."""


class AlreadyDecided(Exception):
    """The appointment has left the state the action needs; `status` says what happened to it."""

    def __init__(self, status: Status):
        super().__init__(status)
        self.status = status


class Lapsed(AlreadyDecided):
    """Approved (or accepted) once the visit's time had begun: the request has lapsed, nothing is confirmed.

    Its expiry is due (a request expires at its start at the latest): expire_due records it and the client
    is told through the one expiry path.
    """

    def __init__(self) -> None:
        super().__init__(Status.EXPIRED)


def too_late(appt: AppointmentRow, now: datetime) -> bool:
    """A visit whose time has begun can no longer be confirmed, however long the approval timeout."""
    return appt.start <= now


def _seat_in(appt: Any, specialist_id: str, service_id: str, location_id: str, start: datetime) -> bool:
    """Whether the appointment is a seat in the group session of this specialist, service, place and start."""
    return (
        appt.group_id is not None
        and appt.specialist_id == specialist_id
        and appt.service_id == service_id
        and appt.location_id == location_id
        and appt.start == start
    )


class NotYet(Exception):
    """Attendance can be recorded only once the visit has begun."""


class CancellationClosed(Exception):
    """The client asked to cancel (or move) after the free-cancellation limit."""


@dataclass(frozen=True, slots=True)
class Request:
    """What a client asks for when they press "Send request"."""

    client_id: int
    service_id: str
    location_id: str
    specialist_id: str
    channel: Channel
    start: datetime
    note: str = ""
    source: str | None = None
    first_available: bool = False  # the client let the practice choose the specialist
    replaces_id: int | None = None  # a request to move this appointment of the client's here
    rules: Rules = CLIENT_RULES
    # Confirmed at once (a partner's booking) instead of waiting for the specialist's approval.
    confirmed: bool = False
    actor: str | None = None


class BookingService:
    """Every booking rule that touches storage or the calendar goes through here."""

    def __init__(
        self,
        practice: Practice,
        store: Store,
        calendar: CalendarPort,
        *,
        clock: Clock = utcnow,
        on_calendar_change: Callable[[], None] = lambda: None,
        calendar_time_limit: float = CALENDAR_TIME_LIMIT,
        calendar_waiters: int = CALENDAR_WAITERS,
    ):
        self.practice = practice
        self.store = store
        self.calendar = calendar
        self.clock = clock
        self._wake_outbox = on_calendar_change
        self.calendar_time_limit = calendar_time_limit
        self.calendar_waiters = calendar_waiters
        self._calendar_waiting: dict[str, int] = {}
        self._turns: dict[str, asyncio.Semaphore] = {}
        self.sync = CalendarSync(practice, store, calendar, clock=lambda: self.clock(), wake_outbox=on_calendar_change)

    @contextlib.asynccontextmanager
    async def turn(self, specialist_id: str) -> AsyncIterator[None]:
        """Wait for one of the specialist's `TURNS` places to request a booking from (in this process).

        Only an order of arrival: the lock and the re-check in `request` still decide every booking.
        """
        turns = self._turns.setdefault(specialist_id, asyncio.Semaphore(TURNS))
        async with turns:
            yield

    def wake_outbox(self) -> None:
        """Tell the outbox worker that calendar writes are waiting."""
        self._wake_outbox()

    # --- reading free time -------------------------------------------------------------------------

    def _local_range(self, location_id: str, first_day: date, last_day: date) -> tuple[datetime, datetime]:
        zone = self.practice.zone(location_id)
        start = datetime.combine(first_day, datetime.min.time(), zone).astimezone(UTC)
        end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
        return start, end

    def _buffer(self, service_id: str) -> timedelta:
        service = self.practice.service_by_id.get(service_id)
        return timedelta(minutes=service.buffer_after if service else 0)

    async def busy(
        self, specialist_ids: Iterable[str], start: datetime, end: datetime, *, fresh: bool = False
    ) -> dict[str, list[Busy]]:
        """Busy time per specialist: foreign calendar events plus our own active appointments with buffers.

        Raises CalendarUnavailable when a calendar cannot be read and nothing trustworthy is cached.
        """
        # Our events found in the calendar are ours to judge from the database, whatever state
        # the calendar copy is in; a day of margin catches appointments that straddle the range.
        margin = timedelta(days=1)
        ids = list(dict.fromkeys(specialist_ids))
        # Side by side: one slow calendar does not add its wait to every other specialist's.
        reads = await asyncio.gather(
            *(self.calendar.busy(spec_id, start, end, fresh=fresh) for spec_id in ids), return_exceptions=True
        )
        events: dict[str, list[Busy]] = {}
        readable = any(not isinstance(read, BaseException) for read in reads)
        for spec_id, read in zip(ids, reads, strict=True):
            if isinstance(read, CalendarUnavailable) and readable and not fresh:
                # Browsing several: the others are offered, this one counts all busy (never a false "free").
                log.debug("calendar of %s unavailable, counted busy: %s", spec_id, read)
                events[spec_id] = [Busy(start, end)]
            elif isinstance(read, BaseException):
                raise read
            else:
                events[spec_id] = read
        # One short query for every specialist's own appointments, read after the calendars so it is the newer.
        async with self.store.quick() as tx:
            own = await tx.own_times(ids, start - margin, end + margin)
        result: dict[str, list[Busy]] = {}
        for spec_id in ids:
            mine = [row for row in own if row.specialist_id == spec_id]
            known = {row.uid for row in mine} | {row.group_uid for row in mine if row.group_uid is not None}
            active = self.own_busy([row for row in mine if row.status in ACTIVE_STATUSES])
            result[spec_id] = [b for b in events[spec_id] if b.uid not in known] + active
        return result

    def own_busy(self, active: Sequence[Any]) -> list[Busy]:
        """The time our active appointments block, with their buffers; a group session's seats say when
        the session has room for more (rows need uid, start, end, service_id, location_id, group_id)."""
        taken: dict[int, int] = {}
        for row in active:
            if row.group_id is not None:
                taken[row.group_id] = taken.get(row.group_id, 0) + 1
        out: list[Busy] = []
        for row in active:
            seats = None
            if row.group_id is not None:
                service = self.practice.service_by_id.get(row.service_id)
                free = (service.seats if service else 0) - taken[row.group_id]
                seats = Seats(row.service_id, row.location_id, free) if free > 0 else None
            out.append(Busy(row.start, row.end + self._buffer(row.service_id), uid=row.uid, seats=seats))
        return out

    def today(self, location_id: str) -> date:
        """Today's date where the location is."""
        return self.clock().astimezone(self.practice.zone(location_id)).date()

    def last_day(self, location_id: str, specialist_ids: Sequence[str]) -> date:
        """The last local date any of these specialists can be booked for."""
        return max(last_bookable_day(self.practice, s, self.clock(), location_id) for s in specialist_ids)

    async def _engine_view(
        self,
        view: Callable[..., T],
        service_id: str,
        location_id: str,
        specialist_ids: Sequence[str],
        first_day: date,
        last_day: date,
        *,
        fresh: bool = False,
        rules: Rules = CLIENT_RULES,
    ) -> T:
        """Run a slot-engine view over local days with the busy time it needs."""
        start, end = self._local_range(location_id, first_day, last_day)
        busy = await self.busy(specialist_ids, start, end, fresh=fresh)
        return view(
            self.practice,
            service_id=service_id,
            location_id=location_id,
            specialist_ids=specialist_ids,
            first_day=first_day,
            last_day=last_day,
            busy=busy,
            now=self.clock(),
            rules=rules,
        )

    async def month_days(
        self, service_id: str, location_id: str, specialist_ids: Sequence[str], first_day: date, last_day: date
    ) -> set[date]:
        """Local dates in [first_day, last_day] with at least one free slot (the day picker's marks)."""
        return await self._engine_view(days_with_slots, service_id, location_id, specialist_ids, first_day, last_day)

    async def day_slots(
        self,
        service_id: str,
        location_id: str,
        specialist_ids: Sequence[str],
        day: date,
        *,
        fresh: bool = False,
        rules: Rules = CLIENT_RULES,
    ) -> list[Slot]:
        """Free slots of one local day for the given specialists."""
        return await self._engine_view(
            free_slots, service_id, location_id, specialist_ids, day, day, fresh=fresh, rules=rules
        )

    async def free_between(
        self,
        service_id: str,
        location_id: str,
        specialist_ids: Sequence[str],
        first_day: date,
        last_day: date,
        *,
        rules: Rules = CLIENT_RULES,
    ) -> list[Slot]:
        """Free slots on local days first_day..last_day for the given specialists."""
        return await self._engine_view(
            free_slots, service_id, location_id, specialist_ids, first_day, last_day, rules=rules
        )

    async def assign(self, slots: Sequence[Slot], client_id: int | None) -> Slot:
        """Pick one of several specialists free at one start: the previous one, else the least booked that week."""
        if len(slots) == 1:
            return slots[0]
        async with self.store.tx() as tx:
            previous = await tx.last_specialist(client_id) if client_id is not None else None
            for slot in slots:
                if slot.specialist_id == previous:
                    return slot
            week_start = slots[0].start - timedelta(days=slots[0].start.weekday())
            week_start = week_start.replace(hour=0, minute=0, second=0, microsecond=0)
            week_end = week_start + timedelta(days=7)
            load = {
                s.specialist_id: await tx.count_active_between(s.specialist_id, week_start, week_end) for s in slots
            }
        return min(slots, key=lambda s: (load[s.specialist_id], s.specialist_id))

    # --- requesting ----------------------------------------------------------------------------------

    async def request(
        self, req: Request, *, within: Callable[[Tx, AppointmentRow], Awaitable[None]] | None = None
    ) -> AppointmentRow:
        """Book a requested slot after re-checking it against the calendar and the database, under a lock.

        `within` runs in the booking's transaction (a partner's record of it): if it raises, nothing is booked.
        Raises SlotTaken (with the day's remaining slots), InvalidRequest, or LimitReached for a client's own
        request beyond the practice's limits (checked again under the client's lock as the request is written).
        """
        service = self.practice.service_by_id.get(req.service_id)
        if service is None or req.specialist_id not in self.practice.specialist_by_id:
            raise InvalidRequest([Problem(ProblemKind.SERVICE_NOT_OFFERED)])
        # A client asking for themselves; a partner's or the staff's bookings follow their own rules.
        limited = req.actor is None
        end = req.start + timedelta(minutes=service.duration)
        window = (req.start - timedelta(days=1), end + timedelta(days=1))
        refused, early, refusal = None, [], None
        async with self.store.tx() as tx:
            if limited:
                refused = await limits.admit_in(
                    tx, self.practice.limits, req.client_id, self.clock(), moving=req.replaces_id
                )
            if refused is None:
                # A time one of our own bookings took is refused from the database alone; the calendar
                # round trip is kept for requests that may succeed. The locked check in _book decides.
                active = await tx.active_times(req.specialist_id, *window)
                early = self._problems(req, self._busy_for(req, active))
                if self._taken(early):
                    if limited:
                        # A time someone else took just before costs the client none of their Sends.
                        await tx.uncount_send(req.client_id)
                    refusal = await self._ours(tx, req)  # for the refusal's remaining times
        if refused is not None:
            raise refused
        if early:
            events = await self._calendar_read(req.specialist_id, window, fresh=False)
            await self._refuse(req, early, events, refusal)
        return await self._book(req, service, end, window, limited, within)

    @staticmethod
    def _taken(problems: Sequence[Problem]) -> bool:
        """Whether a refusal means "someone else got this time" (SlotTaken), not a request never valid."""
        return bool(problems) and all(p.kind in _TAKEN for p in problems)

    async def _book(
        self,
        req: Request,
        service: Service,
        end: datetime,
        window: tuple[datetime, datetime],
        limited: bool,
        within: Callable[[Tx, AppointmentRow], Awaitable[None]] | None,
    ) -> AppointmentRow:
        """request()'s work once the request is admitted and not refused early: re-check the time against the
        calendar read fresh, then write it under the locks."""
        events = await self._calendar_read(req.specialist_id, window, fresh=True)
        now = self.clock()
        # The service confirms requests itself (not a request to move, which the specialist carries out).
        auto = service.auto_approve and req.replaces_id is None and not req.confirmed
        confirmed = req.confirmed or auto
        client, refusal = None, None
        async with self.store.tx() as tx:
            if limited:
                # The client's lock first, always: no lock cycles. Its row comes with it, for add_appointment.
                client = await tx.lock_client(req.client_id, load=True)
            # Under the specialist's lock seats are counted too: racing clients never fill a session beyond its seats.
            await tx.lock_specialist(req.specialist_id)
            if limited:
                await limits.check_requests(tx, self.practice.limits, req.client_id, now, moving=req.replaces_id)
            ours = await tx.known_uids(req.specialist_id, *window)
            active = await tx.active_times(req.specialist_id, *window)
            if any(a.client_id == req.client_id and self._same_session(req, a) for a in active):
                raise InvalidRequest([Problem(ProblemKind.COLLISION)])  # a second seat for the same client
            busy = [b for b in events if b.uid not in ours] + self._busy_for(req, active)
            problems = self._problems(req, busy)
            if not problems:
                group = None
                if service.seats > 1:
                    group = await tx.group_at(
                        specialist_id=req.specialist_id,
                        service_id=req.service_id,
                        location_id=req.location_id,
                        start=req.start,
                        end=end,
                        at=now,
                    )
                appt = await tx.add_appointment(
                    client_id=req.client_id,
                    specialist_id=req.specialist_id,
                    service_id=req.service_id,
                    location_id=req.location_id,
                    channel=str(req.channel),
                    start=req.start,
                    end=end,
                    note=req.note,
                    source=req.source,
                    expires_at=None if confirmed else self.expiry(now, req.start),
                    actor=req.actor or f"client:{req.client_id}",
                    at=now,
                    first_available=req.first_available,
                    replaces_id=req.replaces_id,
                    group=group,
                    status=Status.CONFIRMED if confirmed else Status.REQUESTED,
                    details={"auto_approved": True} if auto else None,
                    client=client,
                )
                if within is not None:
                    await within(tx, appt)
                # Just written, neither a series' visit nor (without a group) a seat: its own calendar resource.
                await tx.enqueue_sync(appt.id, req.specialist_id, now, alone=group is None)
            elif self._taken(problems):
                if limited:
                    await tx.uncount_send(req.client_id)  # taken meanwhile: no Send counted, under the lock held
                refusal = await self._ours(tx, req)
        if problems:
            await self._refuse(req, problems, busy, refusal)
        self._wake_outbox()
        return appt

    async def _calendar_read(self, specialist_id: str, window: tuple[datetime, datetime], *, fresh: bool) -> list[Busy]:
        """The calendar's busy time for a booking, within the booking path's time and concurrency limits.

        Concurrent fresh reads share one request (the gateway does that); beyond `calendar_waiters` readers
        of one specialist, or past `calendar_time_limit` seconds, or with the server down, the cached copy
        answers and the specialist's approval is the final word. With nothing cached either, the whole window
        counts busy: a calendar never read never gives a false "free".
        """
        waiting = self._calendar_waiting.get(specialist_id, 0)
        if fresh and waiting < self.calendar_waiters:
            self._calendar_waiting[specialist_id] = waiting + 1
            try:
                async with asyncio.timeout(self.calendar_time_limit):
                    return await self.calendar.busy(specialist_id, *window, fresh=True)
            except (CalendarUnavailable, TimeoutError) as exc:
                # The event itself is queued in the outbox and written once the server answers.
                log.warning(
                    "calendar of %s did not answer while booking (%s); using cached busy data",
                    specialist_id,
                    type(exc).__name__,
                )
            finally:
                self._calendar_waiting[specialist_id] -= 1
        try:
            async with asyncio.timeout(self.calendar_time_limit):
                return await self.calendar.busy(specialist_id, *window)
        except (CalendarUnavailable, TimeoutError) as exc:
            # Nothing read and nothing cached (a calendar unreachable since start): when unsure, busy.
            log.warning("calendar of %s cannot be read (%s); the time counts busy", specialist_id, type(exc).__name__)
            return [Busy(*window)]

    def _same_session(self, req: Request, appt: Any) -> bool:
        """Whether the appointment is a seat in the group session the request asks to join."""
        return _seat_in(appt, req.specialist_id, req.service_id, req.location_id, req.start)

    def open_session(
        self, specialist_id: str, service_id: str, location_id: str, start: datetime, active: Sequence[Any]
    ) -> list[Any]:
        """The active seats of the group session at exactly this time, service and place while it has room left
        (none when there is no such session or it is full): a new seat there does not collide with them.

        `active`: appointments, or rows of their fields (Tx.active_times)."""
        service = self.practice.service_by_id.get(service_id)
        seats = [a for a in active if _seat_in(a, specialist_id, service_id, location_id, start)]
        return seats if service is not None and len(seats) < service.seats else []

    def busy_for(
        self, specialist_id: str, service_id: str, location_id: str, start: datetime, active: Sequence[Any]
    ) -> list[Busy]:
        """Our appointments' busy time as a visit at `start` sees it: seats of a session it may join leave it free."""
        joining = {a.id for a in self.open_session(specialist_id, service_id, location_id, start, active)}
        return [self.appointment_busy(a) for a in active if a.id not in joining]

    def _busy_for(self, req: Request, active: Sequence[Any]) -> list[Busy]:
        """busy_for as the request sees it."""
        return self.busy_for(req.specialist_id, req.service_id, req.location_id, req.start, active)

    def appointment_busy(self, appt: Any) -> Busy:
        """The time an appointment of ours (or a row of its fields) blocks: itself and its service's buffer."""
        return Busy(appt.start, appt.end + self._buffer(appt.service_id), uid=appt.uid)

    def _problems(self, req: Request, busy: list[Busy]) -> list[Problem]:
        return check_appointment(
            self.practice,
            specialist_id=req.specialist_id,
            service_id=req.service_id,
            location_id=req.location_id,
            start=req.start,
            busy=busy,
            now=self.clock(),
            channel=req.channel,
            rules=req.rules,
        )

    def _refusal_day(self, req: Request) -> tuple[date, datetime, datetime]:
        """The local day of a refused request, and the range its remaining times need our bookings of."""
        local_day = req.start.astimezone(self.practice.zone(req.location_id)).date()
        start, end = self._local_range(req.location_id, local_day, local_day)
        margin = timedelta(days=1)
        return local_day, start - margin, end + margin

    async def _ours(self, tx: Tx, req: Request) -> tuple[set[str], list[Any]]:
        """For a refusal's remaining times: the uids of our bookings and our active ones around the request's day."""
        _day, start, end = self._refusal_day(req)
        return await tx.known_uids(req.specialist_id, start, end), await tx.active_times(req.specialist_id, start, end)

    async def _refuse(
        self,
        req: Request,
        problems: list[Problem],
        events: list[Busy],
        ours: tuple[set[str], list[Any]] | None = None,
    ) -> NoReturn:
        """Raise SlotTaken with the day's remaining slots, or InvalidRequest for a request never bookable.

        The remaining slots come from `events`, the calendar as just read (the window covers the whole
        local day), and the database (`ours`, when the transaction that found the problems read it already):
        a refusal never waits for the calendar again.
        """
        if not self._taken(problems):
            raise InvalidRequest(problems)
        local_day, _start, _end = self._refusal_day(req)
        if ours is None:
            async with self.store.tx() as tx:
                ours = await self._ours(tx, req)
        known, active = ours
        busy = [b for b in events if b.uid not in known] + self.own_busy(active)
        raise SlotTaken(
            free_slots(
                self.practice,
                service_id=req.service_id,
                location_id=req.location_id,
                specialist_ids=[req.specialist_id],
                first_day=local_day,
                last_day=local_day,
                busy={req.specialist_id: busy},
                now=self.clock(),
                rules=req.rules,
            )
        )

    def expiry(self, now: datetime, start: datetime) -> datetime:
        # A request must be decided before the visit starts, even when the timeout is longer.
        timeout = timedelta(hours=self.practice.practice.approval_timeout_hours)
        return min(now + timeout, start)

    # --- deciding ------------------------------------------------------------------------------------

    def may_decide(self, appt: AppointmentRow, telegram_id: int) -> bool:
        """Only the appointment's specialist or a practice admin may approve, decline or mark it."""
        spec = self.practice.specialist_by_id.get(appt.specialist_id)
        return telegram_id in self.practice.practice.admins or (spec is not None and spec.telegram_id == telegram_id)

    async def _decide(
        self, appointment_id: int, telegram_id: int, target: Status, reason: str | None = None
    ) -> AppointmentRow:
        now = self.clock()
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id, for_update=True)
            if appt is None:
                raise NotAllowed(appointment_id)
            if not self.may_decide(appt, telegram_id):
                raise NotAllowed(appointment_id)
            if target == Status.CONFIRMED and appt.status == Status.REQUESTED and too_late(appt, now):
                raise Lapsed()
            role = "admin" if telegram_id in self.practice.practice.admins else "specialist"
            actor = f"{role}:{telegram_id}"
            if target == Status.CONFIRMED and appt.replaces_id is not None:
                await self._carry_out_move(tx, appt, actor=actor, at=now)
                self._wake_outbox()
                return appt
            try:
                await tx.transition(appt, target, actor=actor, at=now, reason=reason)
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            if target == Status.DECLINED:
                appt.decline_reason = reason
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.wake_outbox()
        return appt

    async def _carry_out_move(self, tx: Tx, move: AppointmentRow, *, actor: str, at: datetime) -> None:
        """Approving a request to move: the appointment takes its time (same UID, SEQUENCE+1), the request ends."""
        assert move.replaces_id is not None
        original = await tx.get_appointment(move.replaces_id, for_update=True)
        if original is None or original.status != Status.CONFIRMED:
            raise AlreadyDecided(Status(original.status) if original is not None else Status.CANCELLED)
        try:
            await tx.transition(move, Status.MOVED, actor=actor, at=at, reason=f"moved #{original.id} here")
        except InvalidTransition as exc:
            raise AlreadyDecided(exc.current) from None
        old_specialist = original.specialist_id
        moved = await tx.move(
            original, move.start, move.end, actor=actor, at=at, specialist_id=move.specialist_id, channel=move.channel
        )
        if not moved:
            raise AlreadyDecided(Status.CANCELLED)  # changed under us: the transaction is rolled back
        await tx.enqueue_sync(move.id, move.specialist_id, at)  # the held time's tentative event goes
        if old_specialist != move.specialist_id:
            await tx.enqueue_sync(original.id, old_specialist, at)
        await tx.enqueue_sync(original.id, original.specialist_id, at)

    async def approve(self, appointment_id: int, telegram_id: int) -> AppointmentRow:
        """Confirm a request; the calendar event becomes CONFIRMED through the outbox.

        Approving a request to move returns it with status `moved`; the appointment it names has its new time.
        """
        return await self._decide(appointment_id, telegram_id, Status.CONFIRMED)

    async def decline(self, appointment_id: int, telegram_id: int, reason: str) -> AppointmentRow:
        """Decline a request with a reason; its event is removed and the time is free again."""
        return await self._decide(appointment_id, telegram_id, Status.DECLINED, reason)

    async def decline_all(self, client_id: int, telegram_id: int) -> list[AppointmentRow]:
        """An admin declines every undecided request of one client at once (one person flooding the practice).

        A series is declined as a whole, a request to move leaves its visit as it is. Returns the declined
        requests (empty when none was left); raises NotAllowed for anyone but an admin.
        """
        if telegram_id not in self.practice.practice.admins:
            raise NotAllowed(client_id)
        now, actor = self.clock(), f"admin:{telegram_id}"
        declined: list[AppointmentRow] = []
        async with self.store.tx() as tx:
            await tx.lock_client(client_id)  # no new request of theirs slips in meanwhile
            for appt in await tx.client_requests(client_id):
                try:
                    await tx.transition(appt, Status.DECLINED, actor=actor, at=now)
                except InvalidTransition:
                    continue
                declined.append(appt)
            series_ids = sorted({a.series_id for a in declined if a.series_id is not None})
            for series_id in series_ids:
                series = await tx.get_series(series_id, for_update=True)
                if series is not None:
                    await tx.touch_series(series, now)
            # One calendar write per series (it is one resource), one per other request.
            for appt in {a.series_id or -a.id: a for a in declined}.values():
                await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        if declined:
            self.wake_outbox()
        return declined

    def has_begun(self, appt: AppointmentRow) -> bool:
        return appt.start <= self.clock()

    async def mark(self, appointment_id: int, telegram_id: int, attended: bool) -> AppointmentRow:
        """Record that a confirmed client came (completed) or did not (no-show); raises NotYet before the visit."""
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id)
        if appt is not None and not self.has_begun(appt):
            raise NotYet(appointment_id)
        return await self._decide(appointment_id, telegram_id, Status.COMPLETED if attended else Status.NO_SHOW)

    def staff_view(self, telegram_id: int) -> list[str] | None:
        """Whose appointments this person may see and mark: every specialist's for an admin, else their own."""
        if telegram_id in self.practice.practice.admins:
            return [s.id for s in self.practice.specialists]
        return [s.id for s in self.practice.specialists if s.telegram_id == telegram_id] or None

    async def expire_due(self) -> list[AppointmentRow]:
        """Expire every request nobody decided in time; returns the ones this call expired."""
        now = self.clock()
        expired: list[AppointmentRow] = []
        async with self.store.tx() as tx:
            due = await tx.due_expiries(now)
        # A series' requests expire together (SeriesService.expire_due), so its client is told once.
        for candidate in (a for a in due if a.series_id is None):
            async with self.store.tx() as tx:
                appt = await tx.get_appointment(candidate.id, for_update=True)
                if appt is None or appt.status not in PENDING_STATUSES:
                    continue  # another process, the specialist or the client got there first
                try:
                    await tx.transition(appt, Status.EXPIRED, actor="system", at=now)
                except InvalidTransition:
                    continue  # decided in the moment between reading and writing

                await tx.enqueue_sync(appt.id, appt.specialist_id, now)
                expired.append(appt)
        if expired:
            self.wake_outbox()
        return expired

    async def claim_reminders(self) -> list[AppointmentRow]:
        """Confirmed visits whose reminder is due now, each claimed so that no other process sends it too."""
        now = self.clock()
        leads = [round(h * 60) for h in self.practice.practice.reminder_hours]
        async with self.store.tx() as tx:
            due = await tx.due_reminders(now, leads)
        claimed: list[AppointmentRow] = []
        for appt, due_leads in due:
            async with self.store.tx() as tx:
                if await tx.mark_reminded(appt.id, due_leads[0], now, earlier=due_leads[1:]):
                    claimed.append(appt)
        return claimed

    # --- the client's own appointments ---------------------------------------------------------------

    def may_cancel(self, appt: AppointmentRow) -> bool:
        """A request may always be withdrawn; a confirmed visit only until the specialist's free-cancellation limit."""
        if appt.status != Status.CONFIRMED:
            return True
        spec = self.practice.specialist_by_id[appt.specialist_id]
        return self.clock() <= appt.start - timedelta(hours=spec.cancellation.free_until_hours)

    async def cancel_by_client(self, appointment_id: int, client_id: int, *, late: bool = False) -> AppointmentRow:
        """Cancel the client's own request or appointment; a pending request to move it goes with it.

        After the specialist's free-cancellation limit only with `late=True` (the client confirmed
        that the practice may charge): the appointment then records a late cancellation.
        """
        now = self.clock()
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id, for_update=True)
            if appt is None or appt.client_id != client_id:
                raise NotAllowed(appointment_id)
            is_late = not self.may_cancel(appt)
            if is_late and not late:
                raise CancellationClosed(appointment_id)
            actor = f"client:{client_id}"
            try:
                await tx.transition(appt, Status.CANCELLED, actor=actor, at=now, reason="late" if is_late else None)
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            if is_late:
                await tx.mark_cancelled_late(appt)
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
            move = (await tx.pending_moves([appt.id])).get(appt.id)
            if move is not None:
                await tx.transition(move, Status.CANCELLED, actor=actor, at=now, reason="the appointment was cancelled")
                await tx.enqueue_sync(move.id, move.specialist_id, now)
        self._wake_outbox()
        return appt
