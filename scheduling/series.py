"""Recurring visits: plan and book a series, approve or decline it whole, move or cancel its visits by scope,
and carry edits made in the calendar app back to the right occurrence rows.

A series row holds the rule; every occurrence is an appointment row with its own status, reminders and
attendance. The calendar holds one resource per series, written by the outbox from the rows (see `shown`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduling import limits
from scheduling.booking import (
    AlreadyDecided,
    BookingService,
    CancellationClosed,
    InvalidRequest,
    Lapsed,
    NotAllowed,
    too_late,
)
from scheduling.calendar import CalendarUnavailable
from scheduling.calendar_sync import (
    REMOVED_REASON,
    Incident,
    is_mass,
    missing_confirmed,
    removal_status,
    seen_since_write,
)
from scheduling.conflicts import Problem, ProblemKind, check_appointment
from scheduling.lifecycle import InvalidTransition
from scheduling.model import ACTIVE_STATUSES, IN_CALENDAR, Busy, Channel, Flag, Status
from scheduling.recurrence import (
    MAX_OCCURRENCES,
    FlowBack,
    Layout,
    Occurrence,
    RowState,
    Rule,
    Scope,
    Unclear,
    flow_back,
    layout,
    local_shift,
    until_date,
)
from scheduling.staff import NotAllowed as StaffNotAllowed
from scheduling.staff import Staff
from scheduling.store import AppointmentRow, Tx
from scheduling.store_series import SeriesRow, rule_of
from scheduling.visits import STAFF_SOURCE, flags_text

log = logging.getLogger(__name__)

# Problems a specialist may knowingly accept for some dates by skipping them; anything else refuses the series.
_SKIPPABLE = frozenset(
    {
        ProblemKind.COLLISION,
        ProblemKind.OUTSIDE_LOCATION_SCHEDULE,
        ProblemKind.OUTSIDE_ANY_SCHEDULE,
        ProblemKind.CHANNEL_NOT_ALLOWED,
        ProblemKind.LEAD_TIME,
        ProblemKind.PAST,
    }
)


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """A course of visits: the first visit's time, every `interval_weeks` weeks, `count` visits or until a date."""

    client_id: int
    service_id: str
    location_id: str
    specialist_id: str
    channel: Channel
    start: datetime
    interval_weeks: int = 1
    count: int | None = None
    until: date | None = None  # local date of the last possible visit
    note: str = ""


@dataclass(frozen=True, slots=True)
class DateConflict:
    """One date of a series that cannot be booked, and why."""

    start: datetime
    problems: tuple[Problem, ...]


class SeriesConflicts(Exception):
    """Some dates of a series collide; nothing was saved. Skip them (pass their starts as `skip`) or give up."""

    def __init__(self, total: int, conflicts: Sequence[DateConflict]):
        super().__init__(f"{len(conflicts)} of {total} dates collide")
        self.total = total
        self.conflicts = list(conflicts)

    @property
    def skippable(self) -> bool:
        """Whether booking the other dates would work: every problem is one a date can be skipped for."""
        return len(self.conflicts) < self.total and all(
            p.kind in _SKIPPABLE for c in self.conflicts for p in c.problems
        )


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    rule: Rule
    starts: list[datetime]
    conflicts: list[DateConflict]

    @property
    def free(self) -> list[datetime]:
        taken = {c.start for c in self.conflicts}
        return [s for s in self.starts if s not in taken]


@dataclass(frozen=True, slots=True)
class ChangedVisit:
    appointment: AppointmentRow
    old_start: datetime
    removed: bool


@dataclass(frozen=True, slots=True)
class SeriesMovePlan:
    """A move checked but not saved: each visit it concerns with its new start, and the dates that collide."""

    scope: Scope
    moves: list[tuple[AppointmentRow, datetime]]
    conflicts: list[DateConflict]

    @property
    def skippable(self) -> bool:
        """Whether the move may go ahead without the colliding dates (those visits are then cancelled)."""
        return SeriesConflicts(len(self.moves), self.conflicts).skippable and self.scope != Scope.THIS


@dataclass(slots=True)
class SeriesReconciled:
    """What one pass over a specialist's series found: changes to tell, or vanished series to ask staff about."""

    changes: list[SeriesChange] = field(default_factory=list)
    incident: Incident | None = None


@dataclass(frozen=True, slots=True)
class SeriesChange:
    """One change to a series, to be told to the client in one message: the visits concerned and the new state."""

    series: list[SeriesRow]  # the resources as they now stand (after a split: the old and the new one)
    visits: list[ChangedVisit]
    scope: Scope
    by_calendar: bool = False
    notes: dict[str, str] = field(default_factory=dict)


def shown(rows: Sequence[AppointmentRow]) -> list[Occurrence]:
    """The occurrences the series' calendar resource shows: every row still in the calendar, at its real time."""
    return [
        Occurrence(r.recurrence_id, r.start, r.end, tentative=r.status == Status.REQUESTED)
        for r in rows
        if r.recurrence_id is not None and Status(r.status) in IN_CALENDAR
    ]


def series_layout(series: SeriesRow, rows: Sequence[AppointmentRow]) -> Layout | None:
    """The series as RRULE + EXDATE + overrides; None when no occurrence is left to show."""
    return layout(rule_of(series), timedelta(minutes=series.duration_minutes), shown(rows))


class SeriesService:
    """Every rule about series goes through here; single visits stay with the booking service."""

    def __init__(self, booking: BookingService):
        self.booking = booking
        self.practice = booking.practice
        self.store = booking.store
        self.calendar = booking.calendar

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self.booking.clock

    # --- planning and booking ----------------------------------------------------------------------

    def rule_for(self, req: SeriesRequest) -> Rule:
        """The request's rule; raises InvalidRequest for a rule we do not book (too long, too sparse, one visit)."""
        zone = self.practice.zone(req.location_id)
        try:
            until = None
            if req.until is not None:
                until = until_date(req.until, req.start.astimezone(zone).timetz().replace(tzinfo=None), zone)
            rule = Rule(req.start, zone.key, req.interval_weeks, count=req.count, until=until)
        except ValueError:
            raise InvalidRequest([Problem(ProblemKind.OFF_GRID)]) from None
        instances = rule.instances()
        if len(instances) < 2 or (req.count is not None and req.count > MAX_OCCURRENCES):
            raise InvalidRequest([Problem(ProblemKind.BEYOND_HORIZON)])
        return rule

    async def _read_busy(self, specialist_id: str, starts: Sequence[datetime], duration: timedelta) -> list[Busy]:
        """Foreign calendar events over the series' span, read fresh (raises CalendarUnavailable)."""
        lo, hi = starts[0] - timedelta(days=1), max(starts) + duration + timedelta(days=1)
        return await self.calendar.busy(specialist_id, lo, hi, fresh=True)

    async def _busy_now(
        self, tx: Tx, specialist_id: str, events: list[Busy], starts: Sequence[datetime], exclude: Collection[int] = ()
    ) -> list[Busy]:
        """Foreign events plus our active appointments (but those in `exclude`) over the span."""
        lo, hi = starts[0] - timedelta(days=1), max(starts) + timedelta(days=2)
        ours = await tx.known_uids(specialist_id, lo, hi)
        active = await tx.active_appointments(specialist_id, lo, hi)
        return [b for b in events if b.uid not in ours] + [
            self.booking.appointment_busy(a) for a in active if a.id not in exclude
        ]

    def _conflicts(
        self,
        specialist_id: str,
        service_id: str,
        location_id: str,
        channel: Channel | str | None,
        starts: Sequence[datetime],
        busy: list[Busy],
    ) -> list[DateConflict]:
        now = self.clock()
        out: list[DateConflict] = []
        for i, start in enumerate(starts):
            problems = check_appointment(
                self.practice,
                specialist_id=specialist_id,
                service_id=service_id,
                location_id=location_id,
                start=start,
                busy=busy,
                now=now,
                channel=Channel(channel) if channel else None,
            )
            # A course runs past the booking horizon by design; only its first visit must be within it.
            problems = [p for p in problems if not (i > 0 and p.kind == ProblemKind.BEYOND_HORIZON)]
            if problems:
                out.append(DateConflict(start, tuple(problems)))
        return out

    def _validate(self, req: SeriesRequest) -> timedelta:
        service = self.practice.service_by_id.get(req.service_id)
        spec = self.practice.specialist_by_id.get(req.specialist_id)
        if service is None or spec is None or req.service_id not in spec.services:
            raise InvalidRequest([Problem(ProblemKind.SERVICE_NOT_OFFERED)])
        if req.location_id not in self.practice.location_by_id:
            raise InvalidRequest([Problem(ProblemKind.OUTSIDE_ANY_SCHEDULE)])
        return timedelta(minutes=service.duration)

    async def plan(self, req: SeriesRequest) -> SeriesPlan:
        """Every date of the series checked against the calendar (read fresh) and our bookings."""
        duration = self._validate(req)
        rule = self.rule_for(req)
        starts = rule.instances()
        events = await self._read_busy(req.specialist_id, starts, duration)
        async with self.store.tx() as tx:
            conflicts = await self._date_conflicts(tx, req, events, starts)
        return SeriesPlan(rule, starts, conflicts)

    async def _date_conflicts(
        self, tx: Tx, req: SeriesRequest, events: list[Busy], starts: Sequence[datetime]
    ) -> list[DateConflict]:
        """Every date's problems; for a group service, a date whose session has a free seat is free (joining
        the weekly group from the first date), and a date where the client already has a seat collides."""
        if self.practice.service_by_id[req.service_id].seats <= 1:
            busy = await self._busy_now(tx, req.specialist_id, events, starts)
            return self._conflicts(req.specialist_id, req.service_id, req.location_id, req.channel, starts, busy)
        lo, hi = starts[0] - timedelta(days=1), max(starts) + timedelta(days=2)
        ours = await tx.known_uids(req.specialist_id, lo, hi)
        active = await tx.active_appointments(req.specialist_id, lo, hi)
        foreign = [b for b in events if b.uid not in ours]
        out: list[DateConflict] = []
        for i, start in enumerate(starts):
            spec, service, place = req.specialist_id, req.service_id, req.location_id
            busy = foreign + self.booking.busy_for(spec, service, place, start, active)
            found = self._conflicts(spec, service, place, req.channel, [start], busy)
            # Only the first date must lie within the booking horizon, as for any course.
            problems = [p for c in found for p in c.problems if not (i > 0 and p.kind == ProblemKind.BEYOND_HORIZON)]
            seated = [a for a in active if a.client_id == req.client_id and a.group_id is not None and a.start == start]
            problems += [Problem(ProblemKind.COLLISION, self.booking.appointment_busy(a)) for a in seated]
            if problems:
                out.append(DateConflict(start, tuple(problems)))
        return out

    async def create_for(
        self, staff: Staff, req: SeriesRequest, *, skip: Collection[datetime] = (), flags: Collection[Flag] = ()
    ) -> tuple[SeriesRow, list[AppointmentRow]]:
        """A course the practice books on a client's behalf (/new): confirmed at once, recorded as the staff's,
        every visit with the staff's flags.

        Raises StaffNotAllowed for a specialist booking for a colleague, SeriesConflicts as `create`.
        """
        if not staff.admin and req.specialist_id not in staff.specialist_ids:
            raise StaffNotAllowed(req.specialist_id)
        return await self.create(
            req, actor=staff.actor, confirmed=True, skip=skip, source=STAFF_SOURCE, flags=flags_text(flags)
        )

    async def create(
        self,
        req: SeriesRequest,
        *,
        actor: str,
        confirmed: bool,
        skip: Collection[datetime] = (),
        source: str | None = None,
        flags: str = "",
    ) -> tuple[SeriesRow, list[AppointmentRow]]:
        """Book the series: every date re-checked under the specialist's lock; all or nothing.

        Dates in `skip` that collide are left out (EXDATE); any other collision raises SeriesConflicts and
        saves nothing. `confirmed` books it approved (the specialist's own booking), else it awaits approval.
        """
        duration = self._validate(req)
        rule = self.rule_for(req)
        starts = rule.instances()
        # The client's own request counts against their limits as one request (LimitReached).
        limited = actor == f"client:{req.client_id}"
        if limited:
            await limits.admit(self.store, self.practice.limits, req.client_id, self.clock())
        events = await self._read_busy(req.specialist_id, starts, duration)
        skipped = set(skip)
        now = self.clock()
        async with self.store.tx() as tx:
            if limited:
                await tx.lock_client(req.client_id)
            await tx.lock_specialist(req.specialist_id)
            if limited:
                await limits.check_requests(tx, self.practice.limits, req.client_id, now)
            conflicts = await self._date_conflicts(tx, req, events, starts)
            blocking = [
                c for c in conflicts if c.start not in skipped or any(p.kind not in _SKIPPABLE for p in c.problems)
            ]
            if blocking or len(conflicts) == len(starts):
                raise SeriesConflicts(len(starts), conflicts)
            taken = {c.start for c in conflicts}
            service = self.practice.service_by_id[req.service_id]
            # A group service that confirms its requests itself confirms a client's weekly seats too.
            confirmed = confirmed or service.auto_approve
            series = await tx.add_series(
                client_id=req.client_id,
                specialist_id=req.specialist_id,
                service_id=req.service_id,
                location_id=req.location_id,
                channel=str(req.channel),
                rule=rule,
                duration_minutes=int(duration.total_seconds() // 60),
                note=req.note or None,
                at=now,
            )
            rows: list[AppointmentRow] = []
            expires = self.booking.expiry(now, min(s for s in starts if s not in taken))
            for start in starts:
                if start in taken:
                    continue
                group = None
                if service.seats > 1:
                    # The client joins the weekly group: a seat in each week's session (made if none).
                    group = await tx.group_at(
                        specialist_id=req.specialist_id,
                        service_id=req.service_id,
                        location_id=req.location_id,
                        start=start,
                        end=start + duration,
                        at=now,
                    )
                appt = await tx.add_appointment(
                    client_id=req.client_id,
                    specialist_id=req.specialist_id,
                    service_id=req.service_id,
                    location_id=req.location_id,
                    channel=str(req.channel),
                    start=start,
                    end=start + duration,
                    note=req.note,
                    source=source,
                    flags=flags,
                    expires_at=None if confirmed else expires,
                    actor=actor,
                    at=now,
                    series_id=series.id,
                    recurrence_id=start,
                    group=group,
                )
                if confirmed:
                    await tx.transition(appt, Status.CONFIRMED, actor=actor, at=now)
                rows.append(appt)
            await tx.enqueue_sync(rows[0].id, req.specialist_id, now)
        self.booking._wake_outbox()
        return series, rows

    # --- a client's single request approved as a course ------------------------------------------------

    async def _request_to_repeat(self, tx: Tx, appointment_id: int, telegram_id: int) -> AppointmentRow:
        """The client's pending single request the staff member may decide; raises otherwise."""
        appt = await tx.get_appointment(appointment_id, for_update=True)
        if appt is None or not self.booking.may_decide(appt, telegram_id):
            raise NotAllowed(appointment_id)
        if (
            appt.series_id is not None
            or appt.replaces_id is not None
            or appt.partner_booking is not None
            or appt.group_id is not None
        ):
            raise NotAllowed(appointment_id)  # a series, a move, a partner's booking or a seat is decided as it is
        if appt.status != Status.REQUESTED:
            raise AlreadyDecided(Status(appt.status))
        if too_late(appt, self.clock()):
            raise Lapsed()  # its time has begun: it lapses through the one expiry path
        return appt

    @staticmethod
    def _repeating(appt: AppointmentRow, interval_weeks: int, count: int | None, until: date | None) -> SeriesRequest:
        return SeriesRequest(
            appt.client_id,
            appt.service_id,
            appt.location_id,
            appt.specialist_id,
            Channel(appt.channel),
            appt.start,
            interval_weeks=interval_weeks,
            count=count,
            until=until,
            note=appt.note or "",
        )

    async def plan_approval(
        self,
        appointment_id: int,
        telegram_id: int,
        *,
        interval_weeks: int,
        count: int | None = None,
        until: date | None = None,
    ) -> SeriesPlan:
        """Every date of a course grown from the client's request, checked; the request's own date is theirs."""
        async with self.store.tx() as tx:
            appt = await self._request_to_repeat(tx, appointment_id, telegram_id)
        req = self._repeating(appt, interval_weeks, count, until)
        self._validate(req)
        rule = self.rule_for(req)
        starts = rule.instances()
        events = await self._read_busy(req.specialist_id, starts, appt.end - appt.start)
        async with self.store.tx() as tx:
            busy = await self._busy_now(tx, req.specialist_id, events, starts, exclude={appt.id})
        conflicts = self._conflicts(req.specialist_id, req.service_id, req.location_id, req.channel, starts, busy)
        return SeriesPlan(rule, starts, [c for c in conflicts if c.start != appt.start])

    async def approve_recurring(
        self,
        appointment_id: int,
        telegram_id: int,
        *,
        interval_weeks: int,
        count: int | None = None,
        until: date | None = None,
        skip: Collection[datetime] = (),
    ) -> tuple[SeriesRow, list[AppointmentRow]]:
        """Approve the client's request and book the same time every `interval_weeks` weeks: all or nothing.

        The request becomes the course's first visit and its calendar event becomes the recurring one (the series
        takes the request's UID, so calendar apps update the event in place). Other dates that collide raise
        SeriesConflicts unless skipped; nothing is saved then.
        """
        now = self.clock()
        async with self.store.tx() as tx:
            appt = await self._request_to_repeat(tx, appointment_id, telegram_id)
        req = self._repeating(appt, interval_weeks, count, until)
        duration = self._validate(req)
        rule = self.rule_for(req)
        starts = rule.instances()
        events = await self._read_busy(req.specialist_id, starts, duration)
        skipped = set(skip)
        async with self.store.tx() as tx:
            await tx.lock_specialist(req.specialist_id)
            appt = await self._request_to_repeat(tx, appointment_id, telegram_id)
            if appt.start != req.start:
                raise AlreadyDecided(Status(appt.status))  # moved meanwhile: the caller shows it again
            busy = await self._busy_now(tx, req.specialist_id, events, starts, exclude={appt.id})
            found = self._conflicts(req.specialist_id, req.service_id, req.location_id, req.channel, starts, busy)
            conflicts = [c for c in found if c.start != appt.start]
            blocking = [
                c for c in conflicts if c.start not in skipped or any(p.kind not in _SKIPPABLE for p in c.problems)
            ]
            if blocking or len(conflicts) == len(starts) - 1:
                raise SeriesConflicts(len(starts), conflicts)
            role = "admin" if telegram_id in self.practice.practice.admins else "specialist"
            actor = f"{role}:{telegram_id}"
            series = await tx.add_series(
                client_id=appt.client_id,
                specialist_id=appt.specialist_id,
                service_id=appt.service_id,
                location_id=appt.location_id,
                channel=appt.channel,
                rule=rule,
                duration_minutes=int(duration.total_seconds() // 60),
                note=appt.note or None,
                at=now,
                uid=appt.uid,
            )
            await tx.transition(appt, Status.CONFIRMED, actor=actor, at=now)
            await tx.place_occurrence(appt, series.id, appt.start)
            rows = [appt]
            taken = {c.start for c in conflicts}
            for start in starts[1:]:
                if start in taken:
                    continue
                row = await tx.add_appointment(
                    client_id=appt.client_id,
                    specialist_id=appt.specialist_id,
                    service_id=appt.service_id,
                    location_id=appt.location_id,
                    channel=appt.channel,
                    start=start,
                    end=start + duration,
                    note=appt.note,
                    source=appt.source,
                    expires_at=None,
                    actor=actor,
                    at=now,
                    series_id=series.id,
                    recurrence_id=start,
                )
                await tx.transition(row, Status.CONFIRMED, actor=actor, at=now)
                rows.append(row)
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.booking._wake_outbox()
        return series, rows

    # --- deciding a requested series as a whole ---------------------------------------------------

    async def decide(
        self, series_id: int, telegram_id: int, approve: bool, reason: str | None = None
    ) -> tuple[SeriesRow, list[AppointmentRow]]:
        """Approve or decline every requested visit of the series at once; raises AlreadyDecided if none is left."""
        now = self.clock()
        target = Status.CONFIRMED if approve else Status.DECLINED
        async with self.store.tx() as tx:
            series = await tx.get_series(series_id, for_update=True)
            rows = await tx.series_rows(series_id) if series is not None else []
            if series is None or not rows or not self.booking.may_decide(rows[0], telegram_id):
                raise NotAllowed(series_id)
            waiting = [a for a in rows if a.status == Status.REQUESTED]
            if approve and waiting and too_late(min(waiting, key=lambda a: a.start), now):
                raise Lapsed()  # the course's request lapsed when its first visit began
            role = "admin" if telegram_id in self.practice.practice.admins else "specialist"
            decided: list[AppointmentRow] = []
            for appt in rows:
                if appt.status != Status.REQUESTED:
                    continue
                try:
                    await tx.transition(appt, target, actor=f"{role}:{telegram_id}", at=now, reason=reason)
                except InvalidTransition:
                    continue
                if not approve:
                    appt.decline_reason = reason
                decided.append(appt)
            if not decided:
                raise AlreadyDecided(Status(rows[0].status))
            await tx.touch_series(series, now)
            await tx.enqueue_sync(rows[0].id, series.specialist_id, now)
        self.booking._wake_outbox()
        return series, decided

    async def expire_due(self) -> list[tuple[SeriesRow, list[AppointmentRow]]]:
        """Requests of series nobody decided in time expire together."""
        now = self.clock()
        async with self.store.tx() as tx:
            due = [a for a in await tx.due_expiries(now) if a.series_id is not None]
        out: list[tuple[SeriesRow, list[AppointmentRow]]] = []
        for series_id in sorted({a.series_id for a in due if a.series_id is not None}):
            async with self.store.tx() as tx:
                series = await tx.get_series(series_id, for_update=True)
                if series is None:
                    continue
                expired: list[AppointmentRow] = []
                for appt in await tx.series_rows(series_id):
                    if appt.status != Status.REQUESTED:
                        continue
                    try:
                        await tx.transition(appt, Status.EXPIRED, actor="system", at=now)
                    except InvalidTransition:
                        continue
                    expired.append(appt)
                if expired:
                    await tx.touch_series(series, now)
                    await tx.enqueue_sync(expired[0].id, series.specialist_id, now)
                    out.append((series, expired))
        if out:
            self.booking._wake_outbox()
        return out

    # --- changes by scope --------------------------------------------------------------------------

    async def _load(self, tx: Tx, appointment_id: int) -> tuple[AppointmentRow, SeriesRow, list[AppointmentRow]]:
        appt = await tx.get_appointment(appointment_id, for_update=True)
        if appt is None or appt.series_id is None:
            raise NotAllowed(appointment_id)
        series = await tx.get_series(appt.series_id, for_update=True)
        assert series is not None
        rows = await tx.series_rows(series.id)
        return next(r for r in rows if r.id == appt.id), series, rows

    def _targets(self, appt: AppointmentRow, rows: list[AppointmentRow], scope: Scope) -> list[AppointmentRow]:
        """The active visits a change by `scope` concerns; "all" leaves past visits as they were."""
        now = self.clock()
        active = [r for r in rows if r.status in ACTIVE_STATUSES]
        if scope == Scope.THIS:
            return [appt] if appt.status in ACTIVE_STATUSES else []
        assert appt.recurrence_id is not None
        if scope == Scope.FOLLOWING:
            return [r for r in active if r.recurrence_id is not None and r.recurrence_id >= appt.recurrence_id]
        return [r for r in active if r.start > now]

    def _permit(self, appt: AppointmentRow, who: str, telegram_id: int | None, client_id: int | None, scope: Scope):  # type: ignore[no-untyped-def]
        """Staff may change any scope; a client one visit at a time, within the cancellation policy."""
        if who == "client":
            if client_id is None or appt.client_id != client_id or scope != Scope.THIS:
                raise NotAllowed(appt.id)
            if not self.booking.may_cancel(appt):
                raise CancellationClosed(appt.id)
            return f"client:{client_id}"
        if telegram_id is None or not self.booking.may_decide(appt, telegram_id):
            raise NotAllowed(appt.id)
        role = "admin" if telegram_id in self.practice.practice.admins else "specialist"
        return f"{role}:{telegram_id}"

    async def cancel(
        self,
        appointment_id: int,
        scope: Scope,
        *,
        telegram_id: int | None = None,
        client_id: int | None = None,
        reason: str | None = None,
    ) -> SeriesChange:
        """Cancel this visit (EXDATE), this and the following (the series ends before it) or all future visits."""
        now = self.clock()
        async with self.store.tx() as tx:
            appt, series, rows = await self._load(tx, appointment_id)
            actor = self._permit(appt, "client" if client_id is not None else "staff", telegram_id, client_id, scope)
            targets = self._targets(appt, rows, scope)
            if not targets:
                raise AlreadyDecided(Status(appt.status))
            await tx.lock_specialist(series.specialist_id)
            visits: list[ChangedVisit] = []
            for row in targets:
                try:
                    await tx.transition(row, Status.CANCELLED, actor=actor, at=now, reason=reason)
                except InvalidTransition:
                    continue
                visits.append(ChangedVisit(row, row.start, removed=True))
            if not visits:
                raise AlreadyDecided(Status(appt.status))
            if scope != Scope.THIS:
                await self._end_before(tx, series, rows, min(v.appointment.recurrence_id for v in visits), now)  # type: ignore[type-var]
            else:
                await tx.touch_series(series, now)
            await tx.enqueue_sync(rows[0].id, series.specialist_id, now)
        self.booking._wake_outbox()
        return SeriesChange([series], visits, scope)

    async def _end_before(
        self, tx: Tx, series: SeriesRow, rows: list[AppointmentRow], cut: datetime, now: datetime
    ) -> None:
        """End the rule before `cut` (UNTIL) when what stays in the calendar all lies before it; else EXDATEs do."""
        rule = rule_of(series)
        staying = [o for o in shown(rows) if o.recurrence_id >= cut]
        if staying or not any(m < cut for m in rule.instances()):
            await tx.touch_series(series, now)
            return
        await tx.set_rule(series, rule.ended_before(cut), now)

    def _pivot(
        self, appt: AppointmentRow, series: SeriesRow, rows: list[AppointmentRow], scope: Scope, new_start: datetime
    ) -> tuple[AppointmentRow, datetime]:
        """The visit a move is planned from and its new start: for "all", the first future visit, shifted by the
        same wall-clock change as the visit the specialist moved."""
        if scope != Scope.ALL:
            return appt, new_start
        future = self._targets(appt, rows, Scope.ALL)
        if not future:
            raise AlreadyDecided(Status(appt.status))
        pivot = future[0]
        if pivot.id != appt.id:
            new_start = local_shift(pivot.start, appt.start, new_start, series_zone(series))
        return pivot, new_start

    def _plan_conflicts(
        self,
        series: SeriesRow,
        by_id: dict[int, AppointmentRow],
        plan: dict[int, tuple[datetime, datetime]],
        busy: list[Busy],
    ) -> list[DateConflict]:
        """The visits of a move that cannot go to their new time; a visit keeping its own move is not re-checked."""
        conflicts: list[DateConflict] = []
        for row_id, (start, _key) in plan.items():
            row = by_id[row_id]
            if start == row.start:
                continue
            conflicts += self._conflicts(
                series.specialist_id, series.service_id, series.location_id, row.channel, [start], busy
            )
        return conflicts

    async def check_move(
        self, appointment_id: int, scope: Scope, new_start: datetime, *, telegram_id: int
    ) -> SeriesMovePlan:
        """What a staff member's move would do, checked against the calendar (read fresh); nothing is saved."""
        async with self.store.tx() as tx:
            appt, series, rows = await self._load(tx, appointment_id)
            self._permit(appt, "staff", telegram_id, None, scope)
        duration = appt.end - appt.start
        pivot, new_start = self._pivot(appt, series, rows, scope, new_start)
        plan = self._move_plan(series, rows, pivot, scope, new_start, duration)
        if not plan:
            raise AlreadyDecided(Status(appt.status))
        starts = sorted(s for s, _ in plan.values())
        events = await self._read_busy(series.specialist_id, starts, duration)
        async with self.store.tx() as tx:
            busy = await self._busy_now(tx, series.specialist_id, events, starts, exclude=plan.keys())
        by_id = {r.id: r for r in rows}
        moves = sorted(((by_id[i], start) for i, (start, _key) in plan.items()), key=lambda m: m[0].start)
        return SeriesMovePlan(scope, moves, self._plan_conflicts(series, by_id, plan, busy))

    async def targets(self, appointment_id: int, scope: Scope, *, telegram_id: int) -> list[AppointmentRow]:
        """The visits a staff member's change by `scope` would concern (for the question before cancelling)."""
        async with self.store.tx() as tx:
            appt, _series, rows = await self._load(tx, appointment_id)
            self._permit(appt, "staff", telegram_id, None, scope)
        return self._targets(appt, rows, scope)

    async def move(
        self,
        appointment_id: int,
        scope: Scope,
        new_start: datetime,
        *,
        telegram_id: int | None = None,
        client_id: int | None = None,
        skip: Collection[datetime] = (),
    ) -> SeriesChange:
        """Move this visit (an override), this and the following (a split: the old series ends, a new one starts)
        or every future visit. Visits already moved on their own keep their moves. All or nothing: collisions
        raise SeriesConflicts unless their (new) starts are in `skip`, and those visits are then cancelled."""
        now = self.clock()
        async with self.store.tx() as tx:
            appt, series, rows = await self._load(tx, appointment_id)
        if appt.group_id is not None:
            raise NotAllowed(appointment_id)  # weekly seats keep their sessions' times: cancel them instead
        duration = appt.end - appt.start
        pivot, new_start = self._pivot(appt, series, rows, scope, new_start)
        plan = self._move_plan(series, rows, pivot, scope, new_start, duration)
        starts = sorted(s for s, _ in plan.values())
        if not starts:
            raise AlreadyDecided(Status(appt.status))
        events = await self._read_busy(series.specialist_id, starts, duration)
        skipped = set(skip)
        async with self.store.tx() as tx:
            appt, series, rows = await self._load(tx, appointment_id)
            actor = self._permit(appt, "client" if client_id is not None else "staff", telegram_id, client_id, scope)
            await tx.lock_specialist(series.specialist_id)
            by_id = {r.id: r for r in rows}
            pivot = by_id[pivot.id]
            if self._move_plan(series, rows, pivot, scope, new_start, duration) != plan:
                raise AlreadyDecided(Status(appt.status))  # changed meanwhile: the caller shows it again
            busy = await self._busy_now(tx, series.specialist_id, events, starts, exclude=plan.keys())
            conflicts = self._plan_conflicts(series, by_id, plan, busy)
            blocking = [c for c in conflicts if c.start not in skipped or scope == Scope.THIS]
            if blocking or len(conflicts) == len(plan):
                raise SeriesConflicts(len(plan), conflicts)
            dropped = {c.start for c in conflicts}
            target_series = series
            if scope != Scope.THIS:
                target_series = await self._rehome(tx, series, rows, pivot, new_start, now)
            visits: list[ChangedVisit] = []
            for row_id, (start, key) in plan.items():
                row = by_id[row_id]
                old = row.start
                if scope != Scope.THIS:
                    await tx.place_occurrence(row, target_series.id, key)
                if start in dropped:
                    await tx.transition(row, Status.CANCELLED, actor=actor, at=now, reason="collides after the move")
                    visits.append(ChangedVisit(row, old, removed=True))
                elif start != old:
                    if not await tx.move(row, start, start + duration, actor=actor, at=now):
                        raise AlreadyDecided(Status(row.status))
                    visits.append(ChangedVisit(row, old, removed=False))
            await tx.touch_series(series, now)
            await tx.enqueue_sync(min(r.id for r in rows if r.series_id == series.id), series.specialist_id, now)
            if target_series is not series:
                await tx.enqueue_sync(min(plan), series.specialist_id, now)
        self.booking._wake_outbox()
        touched = [series] if target_series is series else [series, target_series]
        return SeriesChange(touched, visits, scope)

    def _move_plan(
        self,
        series: SeriesRow,
        rows: list[AppointmentRow],
        pivot: AppointmentRow,
        scope: Scope,
        new_start: datetime,
        duration: timedelta,
    ) -> dict[int, tuple[datetime, datetime]]:
        """Row id -> (new start, new recurrence id) for every active visit the move concerns."""
        if scope == Scope.THIS:
            if pivot.status not in ACTIVE_STATUSES:
                return {}
            assert pivot.recurrence_id is not None
            return {pivot.id: (new_start, pivot.recurrence_id)}
        rule = rule_of(series)
        zone = series_zone(series)
        assert pivot.recurrence_id is not None
        new_first = local_shift(pivot.recurrence_id, pivot.start, new_start, zone)
        old_rest = [m for m in rule.instances() if m >= pivot.recurrence_id]
        new_rest = rule.from_instance(pivot.recurrence_id, new_first).instances()
        renamed = dict(zip(old_rest, new_rest, strict=True))
        plan: dict[int, tuple[datetime, datetime]] = {}
        for row in rows:
            if row.status not in ACTIVE_STATUSES or row.recurrence_id not in renamed:
                continue
            key = renamed[row.recurrence_id]
            follows_rule = row.start == row.recurrence_id
            start = new_start if row.id == pivot.id else key if follows_rule else row.start
            plan[row.id] = (start, key)
        return plan

    async def _rehome(
        self,
        tx: Tx,
        series: SeriesRow,
        rows: list[AppointmentRow],
        pivot: AppointmentRow,
        new_start: datetime,
        now: datetime,
    ) -> SeriesRow:
        """The series that holds the visits from the pivot on: the same one with a new rule, or a new one (split)."""
        rule = rule_of(series)
        assert pivot.recurrence_id is not None
        new_first = local_shift(pivot.recurrence_id, pivot.start, new_start, series_zone(series))
        new_rule = rule.from_instance(pivot.recurrence_id, new_first)
        before = [o for o in shown(rows) if o.recurrence_id < pivot.recurrence_id]
        if not before:
            # Nothing earlier to keep: the whole resource takes the new rule (same UID, SEQUENCE+1).
            await tx.set_rule(series, new_rule, now)
            return series
        await tx.set_rule(series, rule.ended_before(pivot.recurrence_id), now)
        new_series = await tx.add_series(
            client_id=series.client_id,
            specialist_id=series.specialist_id,
            service_id=series.service_id,
            location_id=series.location_id,
            channel=series.channel,
            rule=new_rule,
            duration_minutes=series.duration_minutes,
            note=series.note,
            at=now,
            parent_id=series.id,
        )
        # Visits after the pivot that no longer take place go along, so the history stays with the new series.
        renamed = dict(
            zip([m for m in rule.instances() if m >= pivot.recurrence_id], new_rule.instances(), strict=True)
        )
        for row in rows:
            if row.status not in ACTIVE_STATUSES and row.recurrence_id in renamed:
                await tx.place_occurrence(row, new_series.id, renamed[row.recurrence_id])
        return new_series

    # --- edits made in the calendar app ----------------------------------------------------------

    async def reconcile(self, specialist_id: str) -> SeriesReconciled:
        """Carry what the specialist did to a series in their calendar app back to its rows.

        Acts only on a fresh, readable copy of a resource whose writes are all done, under the trust rule of
        single events (scheduling.calendar_sync): a visit or a whole series counts as removed only when a read
        showed it after our last write and two successful reads at least MISSING_CONFIRM apart then miss it; a
        resource never read back since written was lost by the server and is written again; when many series
        vanish at once nothing is cancelled and staff are asked. Moves count at once, as for single events.
        """
        now = self.clock()
        result = SeriesReconciled()
        horizon = timedelta(days=self.practice.specialist_by_id[specialist_id].horizon_days + 1)
        async with self.store.tx() as tx:
            candidates = await tx.watched_series(specialist_id, now, now + horizon)
            pending = {row.appointment_id for row in await tx.outbox_pending()}
            held = {i for inc in await tx.open_incidents(specialist_id) for i in inc.appointments["ids"]}
            snapshot: dict[int, tuple[SeriesRow, list[AppointmentRow]]] = {}
            for series in candidates:
                rows = await tx.series_rows(series.id)
                if rows and min(r.id for r in rows) not in pending and not any(r.id in held for r in rows):
                    snapshot[series.id] = (series, rows)
        if not snapshot:
            return result
        try:
            seen = await self.calendar.series_state(specialist_id, [s.uid for s, _ in snapshot.values()])
        except CalendarUnavailable:
            return result
        vanished: list[tuple[SeriesRow, list[AppointmentRow]]] = []
        for series, rows in snapshot.values():
            if series.uid not in seen:
                if await self._missing_resource(series, rows, now):
                    vanished.append((series, rows))
                continue
            state = seen[series.uid]
            if state is None:
                continue  # there, but unreadable: nothing to act on
            try:
                found = flow_back(rule_of(series), _row_states(rows, now), state)
            except Unclear as exc:
                log.warning("series %s: calendar copy left as it is (%s)", series.id, exc)
                continue
            if not await self._judge_removals(series, rows, found, now):
                continue
            if found.empty and found.rule == rule_of(series):
                continue
            change = await self._apply_flow_back(series, rows, found, now)
            if change is not None:
                result.changes.append(change)
        confirmed = [(s, rows) for s, rows in vanished if missing_confirmed(_upcoming(rows, now), now)]
        if vanished and is_mass(len(vanished), len(snapshot)):
            if confirmed:
                result.incident = await self._open_incident(specialist_id, vanished, now)
        else:
            for series, rows in confirmed:
                change = await self._apply_flow_back(
                    series, rows, FlowBack({}, {}, [r.id for r in _upcoming(rows, now)], rule_of(series)), now
                )
                if change is not None:
                    result.changes.append(change)
        if result.changes:
            self.booking._wake_outbox()
        return result

    async def _missing_resource(self, series: SeriesRow, rows: list[AppointmentRow], now: datetime) -> bool:
        """The series' resource is not in the calendar: written again if the server lost it, else noted missing.

        True when it had been read back since our write, so it may have been deleted in the calendar app.
        """
        upcoming = _upcoming(rows, now)
        async with self.store.tx() as tx:
            if not any(seen_since_write(r) for r in rows if Status(r.status) in IN_CALENDAR):
                log.warning("series %s missing though never read back since written: writing it again", series.id)
                await tx.forget_reads([r.id for r in rows])
                await tx.enqueue_sync(rows[0].id, series.specialist_id, now)
                lost = True
            else:
                await tx.record_missing([r.id for r in upcoming], now)
                lost = False
        if lost:
            self.booking._wake_outbox()
        return not lost and bool(upcoming)

    async def _judge_removals(
        self, series: SeriesRow, rows: list[AppointmentRow], found: FlowBack, now: datetime
    ) -> bool:
        """Record what the read showed; True when the calendar's changes may be carried back now.

        Visits the calendar still shows are seen. Visits it no longer shows (an EXDATE, a cancelled override, the
        series ended) count only once missing from two reads MISSING_CONFIRM apart, after a read that showed them
        since our write; until then nothing of this resource's changes is applied, so the change stays one.
        Visits never read back since written mean the server lost our write: the resource is written again.
        """
        removed = set(found.removed)
        by_id = {r.id: r for r in rows}
        present = [r.id for r in rows if r.id not in removed and Status(r.status) in IN_CALENDAR]
        unseen = [i for i in removed if not seen_since_write(by_id[i])]
        async with self.store.tx() as tx:
            await tx.record_seen(present, now)
            if unseen:
                log.warning("series %s lost visits never read back since written: writing it again", series.id)
                await tx.forget_reads(list(removed))
                await tx.enqueue_sync(rows[0].id, series.specialist_id, now)
            else:
                await tx.record_missing(list(removed), now)
        if unseen:
            self.booking._wake_outbox()
            return False
        return missing_confirmed([by_id[i] for i in removed], now)

    async def _open_incident(
        self, specialist_id: str, vanished: list[tuple[SeriesRow, list[AppointmentRow]]], now: datetime
    ) -> Incident | None:
        gone = [r for _series, rows in vanished for r in _upcoming(rows, now)]
        async with self.store.tx() as tx:
            await tx.lock_specialist(specialist_id)
            if await tx.open_incidents(specialist_id):
                return None  # one question at a time; these stay as they are meanwhile
            row = await tx.open_incident(specialist_id, [a.id for a in gone], now)
        log.warning("%d series of %s vanished at once: nothing cancelled, staff asked", len(vanished), specialist_id)
        return Incident(row.id, specialist_id, gone)

    async def _apply_flow_back(
        self, series: SeriesRow, before: list[AppointmentRow], result: FlowBack, now: datetime
    ) -> SeriesChange | None:
        actor = f"calendar:{series.specialist_id}"
        state = {(r.id, r.start, r.status, r.recurrence_id) for r in before}
        async with self.store.tx() as tx:
            await tx.lock_specialist(series.specialist_id)
            fresh = await tx.get_series(series.id, for_update=True)
            rows = await tx.series_rows(series.id)
            if fresh is None or {(r.id, r.start, r.status, r.recurrence_id) for r in rows} != state:
                return None  # changed meanwhile; the next pass sees the new state
            by_id = {r.id: r for r in rows}
            visits: list[ChangedVisit] = []
            for row_id in result.removed:
                row = by_id[row_id]
                await tx.transition(row, removal_status(row), actor=actor, at=now, reason=REMOVED_REASON)
                visits.append(ChangedVisit(row, row.start, removed=True))
            for row_id, key in result.rekeyed.items():
                await tx.place_occurrence(by_id[row_id], series.id, key)
            for row_id, (key, start, end) in result.moved.items():
                row = by_id[row_id]
                old = row.start
                await tx.place_occurrence(row, series.id, key)
                if await tx.move(row, start, end, actor=actor, at=now):
                    visits.append(ChangedVisit(row, old, removed=False))
            if result.rule != rule_of(fresh):
                await tx.set_rule(fresh, result.rule, now)
            else:
                await tx.touch_series(fresh, now)
            # Rewrites the resource in our canonical form (our texts, SEQUENCE+1) around what the specialist did.
            await tx.enqueue_sync(rows[0].id, series.specialist_id, now)
        if not visits:
            return None
        scope = Scope.THIS if len(visits) == 1 else Scope.FOLLOWING
        return SeriesChange([fresh], visits, scope, by_calendar=True)


def _upcoming(rows: Sequence[AppointmentRow], now: datetime) -> list[AppointmentRow]:
    """The visits the calendar may still change: active and not begun."""
    return [r for r in rows if r.status in ACTIVE_STATUSES and r.start > now]


def series_zone(series: SeriesRow) -> ZoneInfo:
    return ZoneInfo(series.tzid)


def _row_states(rows: Sequence[AppointmentRow], now: datetime) -> list[RowState]:
    """Every row still in the calendar; the calendar may change only the active ones not yet begun."""
    return [
        RowState(r.id, r.recurrence_id, r.start, r.end, r.status in ACTIVE_STATUSES and r.start > now)
        for r in rows
        if r.recurrence_id is not None and Status(r.status) in IN_CALENDAR
    ]
