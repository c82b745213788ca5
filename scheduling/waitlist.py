"""The waiting list: clients who want an earlier time, offered freed time in order of asking.

Each freed slot is offered to one waiting client at a time, for OFFER_MINUTES; the first to
accept gets a normal request (or a request to move their visit). A slot offered to one client is
never offered to another meanwhile, and a booking re-checks the slot as always, so two clients
never get the same time; an offer whose time is gone says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from scheduling.booking import (
    AlreadyDecided,
    BookingService,
    CancellationClosed,
    InvalidRequest,
    NotAllowed,
    Request,
    SlotTaken,
)
from scheduling.calendar import CalendarUnavailable
from scheduling.changes import ChangeService, movable
from scheduling.db import WaitingRow
from scheduling.limits import LimitReached
from scheduling.model import ACTIVE_STATUSES, Channel, Flag, Slot
from scheduling.staff import Staff
from scheduling.store import AppointmentRow
from scheduling.visits import parse_flags

OFFER_MINUTES = 10
WAITING, OFFERED, DONE, LEFT = "waiting", "offered", "done", "left"


class OfferGone(Exception):
    """The offer lapsed, was answered already, or its time was taken meanwhile."""


@dataclass(frozen=True, slots=True)
class Offer:
    """A freed time offered to one waiting client."""

    entry: WaitingRow
    start: datetime
    specialist_id: str


def _key(specialist_id: str, start: datetime) -> str:
    return f"{specialist_id}|{start.isoformat()}"


def _pass_on(row: WaitingRow) -> None:
    """The entry waits again, and the time it was offered is never offered to it again."""
    assert row.offer_specialist is not None and row.offer_start is not None
    row.passed = {"keys": [*(row.passed or {}).get("keys", []), _key(row.offer_specialist, row.offer_start)]}
    row.status = WAITING


class WaitingList:
    """The one source of who waits for an earlier time (the workspace's "ASAP" flag reads it here)."""

    def __init__(self, booking: BookingService):
        self.booking = booking
        self.store = booking.store
        self.practice = booking.practice

    # --- joining and leaving ------------------------------------------------------------------------

    async def join(
        self,
        client_id: int,
        *,
        service_id: str,
        location_id: str,
        specialist_id: str | None,
        first_day: date,
        last_day: date,
        appointment_id: int | None = None,
        only_new: bool = False,
    ) -> WaitingRow:
        """Wait for a time in [first_day, last_day] (a visit to move: only earlier than it); replaces the same wish.

        `only_new`: the client has seen the free times and none suited, so only time freed later is offered.
        """
        now = self.booking.clock()
        seen: list[str] = []
        if only_new:
            offering = [s.id for s in self.practice.specialists_for(service_id, location_id)]
            candidates = [s for s in offering if specialist_id in (None, s)]
            try:
                free = await self.booking.free_between(service_id, location_id, candidates, first_day, last_day)
            except CalendarUnavailable:
                free = []  # nothing could be shown either
            seen = [_key(slot.specialist_id, slot.start) for slot in free]
        async with self.store.tx() as tx:
            same = await tx.session.scalars(
                select(WaitingRow).where(
                    WaitingRow.client_id == client_id,
                    WaitingRow.service_id == service_id,
                    WaitingRow.location_id == location_id,
                    WaitingRow.status.in_((WAITING, OFFERED)),
                )
            )
            for old in same:
                if old.appointment_id == appointment_id:
                    old.status = LEFT
            row = WaitingRow(
                client_id=client_id,
                service_id=service_id,
                location_id=location_id,
                specialist_id=specialist_id,
                first_day=first_day,
                last_day=last_day,
                appointment_id=appointment_id,
                status=WAITING,
                created_at=now,
                passed={"keys": seen},
            )
            tx.session.add(row)
            await tx.session.flush()
        return row

    async def join_earlier(self, appt: AppointmentRow) -> WaitingRow:
        """Wait for an earlier time for a booked visit: from today until the day of the visit."""
        today = self.booking.today(appt.location_id)
        day = appt.start.astimezone(self.practice.zone(appt.location_id)).date()
        return await self.join(
            appt.client_id,
            service_id=appt.service_id,
            location_id=appt.location_id,
            specialist_id=None if appt.first_available else appt.specialist_id,
            first_day=today,
            last_day=day,
            appointment_id=appt.id,
        )

    @staticmethod
    def may_wait_earlier(appt: AppointmentRow) -> bool:
        """A visit whose client can be offered an earlier time: a confirmed single visit, not a series' or a
        group session's (those keep their own times), of a client the offer can reach in Telegram."""
        return movable(appt) and appt.series_id is None and appt.client.telegram_id is not None

    async def follow_asap(self, appt: AppointmentRow) -> WaitingRow | None:
        """The workspace's ASAP flag on a visit: while it is set, the visit waits for an earlier time.

        Staff saw the free times when they booked or flagged the visit, so only time freed from now on is
        offered (as for a client who waits from the day picker). Unset, the visit's wait ends. Called
        whenever the flag changes or the visit becomes confirmed; a wait already running is kept as it is.
        Returns the open wait, if any.
        """
        async with self.store.tx() as tx:
            found = await tx.session.scalars(
                select(WaitingRow).where(
                    WaitingRow.appointment_id == appt.id, WaitingRow.status.in_((WAITING, OFFERED))
                )
            )
            current = found.first()
        if Flag.ASAP not in parse_flags(appt.flags) or not self.may_wait_earlier(appt):
            if current is not None:
                await self.visit_ended(appt.id)
            return None
        if current is not None:
            return current
        return await self.join(
            appt.client_id,
            service_id=appt.service_id,
            location_id=appt.location_id,
            specialist_id=None if appt.first_available else appt.specialist_id,
            first_day=self.booking.today(appt.location_id),
            last_day=appt.start.astimezone(self.practice.zone(appt.location_id)).date(),
            appointment_id=appt.id,
            only_new=True,
        )

    async def leave(self, entry_id: int, client_id: int) -> None:
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry_id)
            if row is not None and row.client_id == client_id and row.status in (WAITING, OFFERED):
                row.status = LEFT

    async def waiting(self, client_id: int) -> list[WaitingRow]:
        """The client's open wishes for an earlier time (for the specialist's card and /my)."""
        async with self.store.tx() as tx:
            rows = await tx.session.scalars(
                select(WaitingRow)
                .where(WaitingRow.client_id == client_id, WaitingRow.status.in_((WAITING, OFFERED)))
                .order_by(WaitingRow.created_at, WaitingRow.id)
            )
            return list(rows)

    async def waiting_for_staff(self, staff: Staff, client_id: int) -> list[WaitingRow]:
        """The client's open waits this staff member may see: to move one of the visits they see, or for a time
        with them (or with anyone) — not a colleague's business with the client."""
        entries = await self.waiting(client_id)
        if staff.admin:
            return entries
        async with self.store.tx() as tx:
            seen = {a.id for a in await tx.staff_appointments(staff.specialist_ids, client_ids=[client_id])}
        with_them = (None, *staff.specialist_ids)
        return [e for e in entries if (e.appointment_id in seen if e.appointment_id else e.specialist_id in with_them)]

    # --- offering ---------------------------------------------------------------------------------

    async def time_freed(self, specialist_id: str | None = None) -> list[Offer]:
        """Time may have freed up (for one specialist, or anyone): offer it to those waiting, in order of asking.

        Every cancel, decline, expiry, move and calendar change calls this; the sweep calls it too.
        Returns the new offers, for the front end to send.
        """
        now = self.booking.clock()
        async with self.store.tx() as tx:
            rows = list(
                await tx.session.scalars(
                    select(WaitingRow)
                    .where(WaitingRow.status.in_((WAITING, OFFERED)))
                    .order_by(WaitingRow.created_at, WaitingRow.id)
                )
            )
        held = {
            _key(r.offer_specialist, r.offer_start)
            for r in rows
            if r.status == OFFERED and r.offer_specialist and r.offer_start and (r.offer_expires_at or now) > now
        }
        offers: list[Offer] = []
        for entry in rows:
            if entry.status != WAITING:
                continue
            candidates = self._specialists(entry)
            if specialist_id is not None:
                if specialist_id not in candidates:
                    continue
                candidates = [specialist_id]
            slot = await self._first_free(entry, candidates, held, now)
            if slot is None:
                continue
            offer = await self._offer(entry.id, slot, now)
            if offer is not None:
                held.add(_key(slot.specialist_id, slot.start))
                offers.append(offer)
        return offers

    def _specialists(self, entry: WaitingRow) -> list[str]:
        offering = [s.id for s in self.practice.specialists_for(entry.service_id, entry.location_id)]
        return [s for s in offering if entry.specialist_id in (None, s)]

    async def _first_free(
        self, entry: WaitingRow, specialists: list[str], held: set[str], now: datetime
    ) -> Slot | None:
        """The earliest free slot for the entry that nobody holds and the client has not passed on."""
        if not specialists:
            return None
        first = max(entry.first_day, self.booking.today(entry.location_id))
        if first > entry.last_day:
            return None
        before: datetime | None = None
        if entry.appointment_id is not None:
            async with self.store.tx() as tx:
                visit = await tx.get_appointment(entry.appointment_id)
            if visit is None or visit.status not in ACTIVE_STATUSES:
                return None
            before = visit.start
        try:
            slots = await self.booking.free_between(
                entry.service_id, entry.location_id, specialists, first, entry.last_day
            )
        except CalendarUnavailable:  # nothing is offered from a calendar that cannot be read; the next pass tries
            return None
        passed = set((entry.passed or {}).get("keys", []))
        for slot in slots:
            key = _key(slot.specialist_id, slot.start)
            if key in held or key in passed or slot.start <= now:
                continue
            if before is not None and slot.start >= before:
                break
            return slot
        return None

    async def _offer(self, entry_id: int, slot: Slot, now: datetime) -> Offer | None:
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry_id, with_for_update=True, populate_existing=True)
            if row is None or row.status != WAITING:
                return None
            row.status = OFFERED
            row.offer_start, row.offer_specialist = slot.start, slot.specialist_id
            row.offer_expires_at = now + timedelta(minutes=OFFER_MINUTES)
            row.offer_chat_id = row.offer_message_id = None
            await tx.session.flush()
            return Offer(row, slot.start, slot.specialist_id)

    async def offer_sent(self, entry_id: int, chat_id: int, message_id: int) -> None:
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry_id)
            if row is not None:
                row.offer_chat_id, row.offer_message_id = chat_id, message_id

    async def unsent_offers(self) -> list[WaitingRow]:
        async with self.store.tx() as tx:
            rows = await tx.session.scalars(
                select(WaitingRow).where(WaitingRow.status == OFFERED, WaitingRow.offer_message_id.is_(None))
            )
            return list(rows)

    async def lapse_due(self) -> list[WaitingRow]:
        """Offers nobody answered in time: back to waiting, that time never offered to them again."""
        now = self.booking.clock()
        lapsed: list[WaitingRow] = []
        async with self.store.tx() as tx:
            due = list(
                await tx.session.scalars(
                    select(WaitingRow).where(WaitingRow.status == OFFERED, WaitingRow.offer_expires_at <= now)
                )
            )
        for candidate in due:
            row = await self._release(candidate.id, expected_start=candidate.offer_start)
            if row is not None:
                lapsed.append(row)
        return lapsed

    async def _release(self, entry_id: int, *, expected_start: datetime | None) -> WaitingRow | None:
        """End an entry's offer (it lapsed, was turned down or its time is gone), remembering the time passed on."""
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry_id, with_for_update=True, populate_existing=True)
            if row is None or row.status != OFFERED or row.offer_start != expected_start:
                return None  # answered or released meanwhile, by another tap or process
            _pass_on(row)
            await tx.session.flush()
            return row

    # --- answering ----------------------------------------------------------------------------------

    async def decline(self, entry_id: int, client_id: int) -> WaitingRow:
        """ "No, thanks": keep waiting, and let the next client have this time."""
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry_id)
        if row is None or row.client_id != client_id:
            raise OfferGone(entry_id)
        released = await self._release(entry_id, expected_start=row.offer_start)
        if released is None:
            raise OfferGone(entry_id)
        return released

    async def accept(self, entry_id: int, client_id: int) -> AppointmentRow:
        """Take the offered time: a request (or a request to move the visit). Raises OfferGone or LimitReached."""
        now = self.booking.clock()
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry_id, with_for_update=True, populate_existing=True)
            if (
                row is None
                or row.client_id != client_id
                or row.status != OFFERED
                or row.offer_expires_at is None
                or row.offer_expires_at <= now
            ):
                raise OfferGone(entry_id)
            # Claimed first (compare-and-set on the status): a second tap finds it taken.
            row.status = DONE
            await tx.session.flush()
            entry = row
        assert entry.offer_start is not None and entry.offer_specialist is not None
        try:
            appt = await self._book(entry)
        except (SlotTaken, InvalidRequest, AlreadyDecided, CancellationClosed, NotAllowed) as exc:
            await self._back_to_waiting(entry)
            raise OfferGone(entry_id) from exc
        except LimitReached:
            # Over the practice's limits, the client cannot take it: the next one waiting may.
            await self._back_to_waiting(entry)
            raise
        return appt

    async def _book(self, entry: WaitingRow) -> AppointmentRow:
        assert entry.offer_start is not None and entry.offer_specialist is not None
        service = self.practice.service_by_id[entry.service_id]
        if entry.appointment_id is not None:
            async with self.store.tx() as tx:
                visit = await tx.get_appointment(entry.appointment_id)
            assert visit is not None
            return await ChangeService(self.booking).request_move(
                visit.id,
                entry.client_id,
                specialist_id=entry.offer_specialist,
                start=entry.offer_start,
                channel=self._channel(service.channels, visit.channel),
            )
        return await self.booking.request(
            Request(
                client_id=entry.client_id,
                service_id=entry.service_id,
                location_id=entry.location_id,
                specialist_id=entry.offer_specialist,
                channel=self._channel(service.channels, None),
                start=entry.offer_start,
                source="waiting-list",
                first_available=entry.specialist_id is None,
            )
        )

    def _channel(self, channels: list[Channel], wanted: str | None) -> Channel:
        """The visit's own channel when moving it, else the service's first."""
        for ch in channels:
            if ch == wanted:
                return ch
        return channels[0]

    async def _back_to_waiting(self, entry: WaitingRow) -> None:
        async with self.store.tx() as tx:
            row = await tx.session.get(WaitingRow, entry.id, with_for_update=True, populate_existing=True)
            if row is not None and row.status == DONE:
                _pass_on(row)

    async def visit_ended(self, appointment_id: int) -> None:
        """A visit someone waited to move earlier is cancelled, over or no longer flagged ASAP: stop waiting for it."""
        async with self.store.tx() as tx:
            rows = await tx.session.scalars(
                select(WaitingRow).where(
                    WaitingRow.appointment_id == appointment_id, WaitingRow.status.in_((WAITING, OFFERED))
                )
            )
            for row in rows:
                row.status = LEFT
