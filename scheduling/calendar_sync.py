"""Carrying the specialist's calendar edits back, without ever mistaking a bad read for a deletion.

An event counts as deleted in the calendar app only when a read showed it after our last
successful write and two successful reads at least MISSING_CONFIRM apart then miss it. An event
never shown since our write was lost by the server: it is written again. When many events of one
calendar vanish at once (a renamed calendar, a restored backup, a server that lost data), nothing
is cancelled: an incident is opened and the specialist and admins decide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduling.calendar import CalendarPort, CalendarUnavailable
from scheduling.config import Practice
from scheduling.db import CalendarIncidentRow
from scheduling.lifecycle import InvalidTransition
from scheduling.model import ACTIVE_STATUSES, Status
from scheduling.store import AppointmentRow, Store

log = logging.getLogger(__name__)

MISSING_CONFIRM = timedelta(minutes=5)
# "Many at once": this many events, or (from two on) this share of the calendar's appointments.
MASS_COUNT = 3
MASS_SHARE = 0.2

REMOVED_REASON = "removed from the calendar"


@dataclass(frozen=True, slots=True)
class CalendarChange:
    """An appointment the specialist moved or removed in their own calendar app."""

    appointment: AppointmentRow
    removed: bool  # False: moved to appointment.start
    old_start: datetime


@dataclass(frozen=True, slots=True)
class Incident:
    """Events of one specialist's calendar that vanished together; staff are asked what happened."""

    id: int
    specialist_id: str
    appointments: list[AppointmentRow]


@dataclass(slots=True)
class Reconciled:
    """What one pass over a specialist's calendar found."""

    changes: list[CalendarChange] = field(default_factory=list)
    incident: Incident | None = None


class IncidentClosed(Exception):
    """Someone already answered this incident; `resolution` says how."""

    def __init__(self, resolution: str | None):
        super().__init__(resolution)
        self.resolution = resolution


def is_mass(vanished: int, watched: int) -> bool:
    """Whether this many events vanishing together out of `watched` is too many to be the specialist's doing."""
    return vanished >= MASS_COUNT or (vanished >= 2 and vanished >= MASS_SHARE * watched)


def seen_since_write(appt: AppointmentRow) -> bool:
    """Whether a successful read showed the event after our last write of it (only then can it vanish)."""
    return appt.seen_at is not None and (appt.written_at is None or appt.seen_at >= appt.written_at)


def missing_confirmed(rows: Iterable[AppointmentRow], now: datetime) -> bool:
    """Whether every one of these was already missing from a read at least MISSING_CONFIRM ago."""
    return all(a.missing_since is not None and now - a.missing_since >= MISSING_CONFIRM for a in rows)


def removal_status(appt: AppointmentRow) -> Status:
    """A request removed from the calendar is declined; a confirmed visit is cancelled."""
    return Status.DECLINED if appt.status == Status.REQUESTED else Status.CANCELLED


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """One event of ours the calendar app may change: a single visit, or a group session with its active seats."""

    uid: str
    rows: list[AppointmentRow]
    group_id: int | None = None

    @property
    def start(self) -> datetime:
        return self.rows[0].start

    @property
    def end(self) -> datetime:
        return self.rows[0].end

    @property
    def seen_since_write(self) -> bool:
        """Whether a read showed the event after our last write (the seats of a session are written together)."""
        return any(seen_since_write(a) for a in self.rows)

    def missing_confirmed(self, now: datetime) -> bool:
        return missing_confirmed(self.rows, now)


def events_of(appts: list[AppointmentRow]) -> list[WatchedEvent]:
    """The calendar events these appointments stand for: each single visit its own, a session's seats one."""
    events: list[WatchedEvent] = []
    sessions: dict[int, list[AppointmentRow]] = {}
    for appt in appts:
        if appt.group_id is None:
            events.append(WatchedEvent(appt.uid, [appt]))
        else:
            sessions.setdefault(appt.group_id, []).append(appt)
    for group_id, seats in sessions.items():
        group = seats[0].group
        assert group is not None
        events.append(WatchedEvent(group.uid, seats, group_id))
    return events


class CalendarSync:
    """Reconciles appointments with what the specialists' booking calendars show."""

    def __init__(
        self,
        practice: Practice,
        store: Store,
        calendar: CalendarPort,
        *,
        clock: Callable[[], datetime],
        wake_outbox: Callable[[], None],
    ):
        self.practice = practice
        self.store = store
        self.calendar = calendar
        self.clock = clock
        self._wake_outbox = wake_outbox

    async def reconcile(self, specialist_id: str) -> Reconciled:
        """One pass: carry moves back, write lost or relocated events again, judge deletions."""
        now = self.clock()
        result = Reconciled()
        horizon = timedelta(days=self.practice.specialist_by_id[specialist_id].horizon_days + 1)
        try:
            current = self.calendar.booking_calendar_url(specialist_id)
        except CalendarUnavailable:
            return result
        async with self.store.tx() as tx:
            active = await tx.active_appointments(specialist_id, now, now + horizon)
            pending = {row.appointment_id for row in await tx.outbox_pending()}
            pending_groups = await tx.pending_groups()
            held = {i for inc in await tx.open_incidents(specialist_id) for i in inc.appointments["ids"]}
        # Occurrences of a series live in the series' resource: SeriesService.reconcile reads those. The seats of a
        # group session (weekly seats too) share the session's event: they are judged together, as one event.
        # Only events in this specialist's calendar: an appointment offered to them is still in its owner's.
        candidates = [
            a
            for a in active
            if a.specialist_id == specialist_id
            and a.start > now
            and (a.group_id not in pending_groups if a.group_id is not None else a.id not in pending)
            and (a.series_id is None or a.group_id is not None)
        ]
        # Written to another calendar (the configuration changed): write them to the current one.
        elsewhere = [a for a in candidates if a.calendar_url and a.calendar_url != current]
        moving = {a.id for a in elsewhere}
        watched = events_of([a for a in candidates if a.id not in moving and a.id not in held])
        if elsewhere:
            log.info("%d events of %s move to the configured booking calendar", len(elsewhere), specialist_id)
            await self._rewrite(specialist_id, elsewhere, now)
        if not watched:
            return result
        try:
            times = await self.calendar.appointment_times(specialist_id, [w.uid for w in watched])
        except CalendarUnavailable:
            return result
        present = [w for w in watched if w.uid in times]
        lost = [w for w in watched if w.uid not in times and not w.seen_since_write]
        gone = [w for w in watched if w.uid not in times and w.seen_since_write]
        async with self.store.tx() as tx:
            await tx.record_seen([a.id for w in present for a in w.rows], now)
            await tx.record_missing([a.id for w in gone for a in w.rows], now)
        if lost:
            log.warning(
                "%d events of %s missing though never read back since written: writing them again",
                len(lost),
                specialist_id,
            )
            await self._rewrite(specialist_id, [a for w in lost for a in w.rows], now)
        for event in present:
            moved = times[event.uid]
            if moved is None or moved == (event.start, event.end):
                continue  # unchanged, or present but unreadable: nothing to act on
            if event.group_id is not None:
                result.changes.extend(await self._move_session(event, *moved, now))
            elif change := await self._move(event.rows[0], *moved, now):
                result.changes.append(change)
        confirmed = [w for w in gone if w.missing_confirmed(now)]
        if gone and is_mass(len(gone), len(watched)):
            if confirmed:
                result.incident = await self._open_incident(specialist_id, [a for w in gone for a in w.rows], now)
        else:
            for appt in (a for w in confirmed for a in w.rows):
                if change := await self._remove(appt, f"calendar:{specialist_id}", now):
                    result.changes.append(change)
        if result.changes:
            self._wake_outbox()
        return result

    async def _rewrite(self, specialist_id: str, appts: list[AppointmentRow], now: datetime) -> None:
        async with self.store.tx() as tx:
            await tx.forget_reads([a.id for a in appts])
            for appt in appts:
                await tx.enqueue_sync(appt.id, specialist_id, now)
        self._wake_outbox()

    async def _move(
        self, candidate: AppointmentRow, start: datetime, end: datetime, now: datetime
    ) -> CalendarChange | None:
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(candidate.id, for_update=True)
            if appt is None or appt.start != candidate.start or appt.status not in ACTIVE_STATUSES:
                return None  # changed meanwhile by someone else; the next pass sees the new state
            if not await tx.move(appt, start, end, actor=f"calendar:{appt.specialist_id}", at=now):
                return None
            # Rewrites the event with our texts and the new SEQUENCE at the time the specialist chose.
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        return CalendarChange(appt, removed=False, old_start=candidate.start)

    async def _move_session(
        self, event: WatchedEvent, start: datetime, end: datetime, now: datetime
    ) -> list[CalendarChange]:
        """The session's event was moved: the session and every active seat take the new time, or none does."""
        actor = f"calendar:{event.rows[0].specialist_id}"
        before = {(a.id, a.start) for a in event.rows}
        async with self.store.tx() as tx:
            await tx.lock_specialist(event.rows[0].specialist_id)
            group = await tx.get_group(event.group_id, for_update=True)
            seats = [s for s in await tx.group_seats(event.group_id) if s.status in ACTIVE_STATUSES and s.start > now]
            if group is None or {(s.id, s.start) for s in seats} != before:
                return []  # changed meanwhile by someone else; the next pass sees the new state
            if not await tx.move_group(group, start, end):
                # Another session of this service and place already starts there: two sessions cannot share a key.
                log.warning("session %s moved in the calendar onto another session's time: left as it is", group.id)
                return []
            changes = []
            for seat in seats:
                if await tx.move(seat, start, end, actor=actor, at=now):
                    changes.append(CalendarChange(seat, removed=False, old_start=event.start))
            # Rewrites the event with our texts and the new SEQUENCE at the time the specialist chose.
            await tx.enqueue_sync(seats[0].id, group.specialist_id, now)
        return changes

    async def _remove(self, candidate: AppointmentRow, actor: str, now: datetime) -> CalendarChange | None:
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(candidate.id, for_update=True)
            if appt is None or appt.start != candidate.start or appt.status not in ACTIVE_STATUSES:
                return None
            try:
                await tx.transition(appt, removal_status(appt), actor=actor, at=now, reason=REMOVED_REASON)
            except InvalidTransition:
                return None  # another process carried the same change first
            if appt.series_id is not None or appt.group_id is not None:
                # The series' resource (the session's event) is written from its rows: it now leaves this one out.
                await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        return CalendarChange(appt, removed=True, old_start=candidate.start)

    async def _open_incident(self, specialist_id: str, gone: list[AppointmentRow], now: datetime) -> Incident | None:
        async with self.store.tx() as tx:
            await tx.lock_specialist(specialist_id)
            if await tx.open_incidents(specialist_id):
                return None  # another process opened it first
            row = await tx.open_incident(specialist_id, [a.id for a in gone], now)
        log.warning("%d events of %s vanished at once: nothing cancelled, staff asked", len(gone), specialist_id)
        return Incident(row.id, specialist_id, gone)

    # --- the staff's answer ------------------------------------------------------------------------

    def may_answer(self, incident: CalendarIncidentRow, telegram_id: int) -> bool:
        spec = self.practice.specialist_by_id.get(incident.specialist_id)
        return telegram_id in self.practice.practice.admins or (spec is not None and spec.telegram_id == telegram_id)

    async def incident(self, incident_id: int) -> Incident | None:
        """An incident with its appointments as they stand now."""
        async with self.store.tx() as tx:
            row = await tx.get_incident(incident_id)
            if row is None:
                return None
            appts = [a for i in row.appointments["ids"] if (a := await tx.get_appointment(i)) is not None]
        return Incident(row.id, row.specialist_id, appts)

    async def resolve(
        self, incident_id: int, telegram_id: int, *, restore: bool
    ) -> tuple[Incident, list[CalendarChange]]:
        """Restore the vanished events (written again) or accept them as cancelled (clients are told).

        Raises LookupError for an unknown incident or a person who may not answer it, IncidentClosed
        when it was answered already.
        """
        now = self.clock()
        async with self.store.tx() as tx:
            row = await tx.get_incident(incident_id)
            if row is None or not self.may_answer(row, telegram_id):
                raise LookupError(incident_id)
            role = "admin" if telegram_id in self.practice.practice.admins else "specialist"
            actor = f"{role}:{telegram_id}"
            if not await tx.resolve_incident(incident_id, "restored" if restore else "cancelled", actor, now):
                raise IncidentClosed(row.resolution)
        incident = await self.incident(incident_id)
        assert incident is not None
        still = [a for a in incident.appointments if a.status in ACTIVE_STATUSES and a.start > now]
        changes: list[CalendarChange] = []
        if restore:
            await self._rewrite(incident.specialist_id, still, now)
        else:
            for appt in still:
                if change := await self._remove(appt, actor, now):
                    changes.append(change)
            if changes:
                self._wake_outbox()
        return incident, changes

    # --- writes that keep failing ---------------------------------------------------------------------

    async def failing_writes(self) -> dict[str, str]:
        """Specialists whose calendar writes have failed longer than the alert time, each reported once:
        specialist id -> the server's last answer."""
        now = self.clock()
        limit = timedelta(minutes=self.practice.practice.calendar_alert_minutes)
        async with self.store.tx() as tx:
            return await tx.claim_write_alerts(now - limit, now)

    async def backlog_failing(self) -> dict[str, datetime]:
        """Specialists whose calendar writes have failed longer than the alert time: since when."""
        limit = timedelta(minutes=self.practice.practice.calendar_alert_minutes)
        cutoff = self.clock() - limit
        async with self.store.tx() as tx:
            since = await tx.failing_since()
        return {spec: at for spec, at in since.items() if at <= cutoff}
