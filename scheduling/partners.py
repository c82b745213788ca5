"""Partner booking rules: the partner's own notice, cancellation deadline and refusal window, random
assignment (a requested returning specialist honoured when free), and idempotent retries."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from scheduling.booking import (
    AlreadyDecided,
    BookingService,
    CancellationClosed,
    InvalidRequest,
    NotAllowed,
    Request,
    SlotTaken,
)
from scheduling.config import Partner, Practice
from scheduling.conflicts import Problem, ProblemKind, check_appointment
from scheduling.db import AppointmentRow, PartnerBookingRow, PartnerEventRow
from scheduling.lifecycle import InvalidTransition
from scheduling.model import Channel, Slot, Status
from scheduling.partner_store import REFUSED
from scheduling.slots import Rules, free_slots, local_to_utc
from scheduling.store import Tx

# Longest range one slot query may ask for, and how far ahead alternatives to a taken slot are sought.
MAX_QUERY_DAYS = 31
ALTERNATIVE_DAYS = 7
ALTERNATIVES = 5


class Unbookable(Exception):
    """The request breaks the partner's rules; `problems` are the typed ones check_appointment gives."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__(", ".join(p.kind for p in problems))
        self.problems = list(problems)


class SlotGone(Exception):
    """No specialist is free at that time any more; `alternatives` are the nearest free starts."""

    def __init__(self, alternatives: list[Slot]):
        super().__init__("slot gone")
        self.alternatives = alternatives


class KeyReused(Exception):
    """An Idempotency-Key already used for a different request."""


class NotFound(Exception):
    """No booking of this partner has that id (another partner's bookings are not found either)."""


class RefusalClosed(Exception):
    """The specialist's refusal window for this partner booking has passed."""


@dataclass(frozen=True, slots=True)
class PartnerClient:
    ref: str
    name: str
    phone: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class PartnerRequest:
    """What a partner posts to book a visit for one of its clients."""

    service_id: str
    start: datetime
    channel: Channel
    client: PartnerClient
    note: str = ""
    location_id: str | None = None
    specialist_id: str | None = None

    def fingerprint(self) -> str:
        """Tells a retried request (same fingerprint) from a different one reusing an idempotency key."""
        data = asdict(self)
        data["start"] = self.start.astimezone(UTC).isoformat()
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PartnerBooking:
    appointment: AppointmentRow
    booking: PartnerBookingRow
    replayed: bool = False  # the first result of an earlier request with the same idempotency key


def rules_for(partner: Partner) -> Rules:
    """The slot engine's rules for a partner: its windows only, its notice instead of the specialists'."""
    return Rules(audience=partner.audience, min_notice_hours=partner.min_notice_hours)


def may_cancel(partner: Partner, appt: AppointmentRow, now: datetime) -> bool:
    """The partner's client may cancel until the partner's deadline before the visit."""
    return now <= appt.start - timedelta(hours=partner.cancel_until_hours)


def month_range(practice: Practice, month: date) -> tuple[datetime, datetime]:
    """The calendar month holding `month` in the practice's zone, as a UTC range [start, end)."""
    zone = ZoneInfo(practice.practice.timezone)
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return local_to_utc(first, time(0), zone), local_to_utc(following, time(0), zone)


SETTLEMENT_COLUMNS = (
    "specialist_id",
    "specialist",
    "date",
    "time",
    "time_zone",
    "service",
    "minutes",
    "outcome",
    "booking_id",
    "client_ref",
)


def settlement_rows(practice: Practice, visits: Sequence[AppointmentRow]) -> list[dict[str, str]]:
    """A partner's completed and no-show visits as rows for its settlement, by specialist and time."""
    rows = []
    for appt in sorted(visits, key=lambda a: (a.specialist_id, a.start, a.id)):
        zone = practice.zone(appt.location_id)
        local = appt.start.astimezone(zone)
        spec = practice.specialist_by_id.get(appt.specialist_id)
        service = practice.service_by_id.get(appt.service_id)
        booking = appt.partner_booking
        rows.append(
            {
                "specialist_id": appt.specialist_id,
                "specialist": spec.name if spec else appt.specialist_id,
                "date": local.date().isoformat(),
                "time": local.strftime("%H:%M"),
                "time_zone": zone.key,
                "service": service.name if service else appt.service_id,
                "minutes": str(int((appt.end - appt.start).total_seconds() // 60)),
                "outcome": "completed" if appt.status == Status.COMPLETED else "no_show",
                "booking_id": booking.public_id if booking else "",
                "client_ref": booking.client_ref if booking else "",
            }
        )
    return rows


def weekly_supply(practice: Practice, partner: Partner, first_day: date) -> int:
    """Visits the partner could book in the week from `first_day` if nobody else booked: schedule only.

    Counted per specialist and service as back-to-back visits (with buffers) on the start grid, the
    partner's most plentiful service counting; busy calendars are not read.
    """
    last_day = first_day + timedelta(days=6)
    # Notice and horizon are about a booking made now; supply is about the week's windows.
    before = datetime.combine(first_day - timedelta(days=1), time(0), UTC)
    supply: dict[str, int] = {}
    for service_id in partner.services:
        service = practice.service_by_id[service_id]
        step = timedelta(minutes=service.duration + service.buffer_after)
        count = 0
        for location in practice.locations:
            for spec in practice.specialists_for(service_id, location.id):
                slots = free_slots(
                    practice,
                    service_id=service_id,
                    location_id=location.id,
                    specialist_ids=[spec.id],
                    first_day=first_day,
                    last_day=last_day,
                    busy={},
                    now=before,
                    rules=Rules(audience=partner.audience, min_notice_hours=0),
                )
                free_from = datetime.min.replace(tzinfo=UTC)
                for slot in slots:
                    if slot.start >= free_from:
                        count += 1
                        free_from = slot.start + step
        supply[service_id] = count
    return max(supply.values(), default=0)


class PartnerService:
    """Everything a partner may do, under that partner's rules, on top of the booking service."""

    def __init__(self, practice: Practice, booking: BookingService, *, rng: random.Random | None = None):
        self.practice = practice
        self.booking = booking
        self.store = booking.store
        self.rng = rng or random.SystemRandom()

    def _now(self) -> datetime:
        return self.booking.clock()

    # --- free time ---------------------------------------------------------------------------------

    def _pairs(self, partner: Partner, service_id: str, location_id: str | None) -> list[tuple[str, str]]:
        """(specialist, location) pairs that could take the service for this partner."""
        locations = [location_id] if location_id else [loc.id for loc in self.practice.locations]
        return [
            (spec.id, loc)
            for loc in locations
            for spec in self.practice.specialists_for(service_id, loc)
            if any(partner.audience in w.booking for w in spec.schedule if w.location == loc)
            or any(partner.audience in e.booking for e in spec.exceptions if e.location == loc)
        ]

    async def slots(
        self,
        partner: Partner,
        service_id: str,
        first_day: date,
        last_day: date,
        specialist_id: str | None = None,
    ) -> list[Slot]:
        """Free starts in windows open to the partner, every location, sorted by start."""
        if service_id not in partner.services or last_day < first_day:
            return []
        last_day = min(last_day, first_day + timedelta(days=MAX_QUERY_DAYS - 1))
        by_location: dict[str, list[str]] = {}
        for spec_id, loc in self._pairs(partner, service_id, None):
            if specialist_id in (None, spec_id):
                by_location.setdefault(loc, []).append(spec_id)
        found: list[Slot] = []
        for loc, spec_ids in by_location.items():
            found += await self.booking.free_between(
                service_id, loc, spec_ids, first_day, last_day, rules=rules_for(partner)
            )
        found.sort(key=lambda s: (s.start, s.location_id, s.specialist_id))
        return found

    async def alternatives(self, partner: Partner, req: PartnerRequest) -> list[Slot]:
        """The free starts nearest to the one asked for, one per start, within a week either way."""
        zone = self.practice.zone(req.location_id) if req.location_id else UTC
        day = req.start.astimezone(zone).date()
        slots = await self.slots(
            partner, req.service_id, day - timedelta(days=ALTERNATIVE_DAYS), day + timedelta(days=ALTERNATIVE_DAYS)
        )
        slots = [s for s in slots if req.location_id in (None, s.location_id)]
        nearest: dict[datetime, Slot] = {}
        for slot in sorted(slots, key=lambda s: (abs(s.start - req.start), s.start)):
            nearest.setdefault(slot.start, slot)
            if len(nearest) == ALTERNATIVES:
                break
        return sorted(nearest.values(), key=lambda s: s.start)

    # --- booking -----------------------------------------------------------------------------------

    async def book(self, partner: Partner, req: PartnerRequest, idempotency_key: str | None = None) -> PartnerBooking:
        """Book a confirmed visit: the requested specialist if free, else one chosen at random among the free.

        Raises Unbookable (422), SlotGone (409) or KeyReused; a retried key returns the first booking.
        """
        fingerprint = req.fingerprint()
        if idempotency_key is not None:
            earlier = await self._replay(partner, idempotency_key, fingerprint)
            if earlier is not None:
                return earlier
        if req.service_id not in partner.services or req.service_id not in self.practice.service_by_id:
            raise Unbookable([Problem(ProblemKind.SERVICE_NOT_OFFERED)])
        candidates = await self._candidates(partner, req)
        now = self._now()
        async with self.store.tx() as tx:
            client_id = await tx.partners.client_for(
                partner.id,
                req.client.ref,
                name=req.client.name,
                phone=req.client.phone,
                email=req.client.email,
                at=now,
            )
        for spec_id, loc in candidates:
            try:
                appt = await self.booking.request(
                    Request(
                        client_id=client_id,
                        service_id=req.service_id,
                        location_id=loc,
                        specialist_id=spec_id,
                        channel=req.channel,
                        start=req.start,
                        note=req.note,
                        source=f"partner:{partner.id}",
                        rules=rules_for(partner),
                        confirmed=True,
                        actor=f"partner:{partner.id}",
                    ),
                    within=self._recorder(partner, req, idempotency_key, fingerprint),
                )
            except (SlotTaken, InvalidRequest):
                continue  # taken meanwhile: the next free specialist
            except IntegrityError:
                # The same key was booked by a concurrent retry that committed first: return its result.
                if idempotency_key is None:
                    raise
                earlier = await self._replay(partner, idempotency_key, fingerprint)
                if earlier is None:
                    raise
                return earlier
            async with self.store.tx() as tx:
                booking = await tx.partners.booking(appt.id)
            assert booking is not None
            return PartnerBooking(appt, booking)
        raise SlotGone(await self.alternatives(partner, req))

    def _recorder(
        self, partner: Partner, req: PartnerRequest, key: str | None, fingerprint: str
    ) -> Callable[[Tx, AppointmentRow], Awaitable[None]]:
        """What the booking transaction records besides the appointment: the partner's booking."""

        async def record(tx: Tx, appt: AppointmentRow) -> None:
            now = self._now()
            await tx.partners.add_booking(
                appt,
                partner_id=partner.id,
                client_ref=req.client.ref,
                idempotency_key=key,
                request_hash=fingerprint if key else None,
                refusal_until=now + timedelta(minutes=partner.refusal_minutes),
                at=now,
            )

        return record

    async def _replay(self, partner: Partner, key: str, fingerprint: str) -> PartnerBooking | None:
        async with self.store.tx() as tx:
            found = await tx.partners.by_idempotency_key(partner.id, key)
        if found is None:
            return None
        if found[1].request_hash != fingerprint:
            raise KeyReused(key)
        return PartnerBooking(found[0], found[1], replayed=True)

    async def _candidates(self, partner: Partner, req: PartnerRequest) -> list[tuple[str, str]]:
        """Free (specialist, location) pairs in the order to try: the requested one first, the rest at random.

        Raises Unbookable when no pair could ever take it, SlotGone when all that could are taken.
        """
        pairs = self._pairs(partner, req.service_id, req.location_id)
        if not pairs:
            raise Unbookable([Problem(ProblemKind.OUTSIDE_ANY_SCHEDULE)])
        service = self.practice.service_by_id[req.service_id]
        end = req.start + timedelta(minutes=service.duration)
        busy = await self.booking.busy(
            dict.fromkeys(s for s, _ in pairs), req.start - timedelta(days=1), end + timedelta(days=1)
        )
        now = self._now()
        verdicts = {
            (spec_id, loc): check_appointment(
                self.practice,
                specialist_id=spec_id,
                service_id=req.service_id,
                location_id=loc,
                start=req.start,
                busy=busy[spec_id],
                now=now,
                channel=req.channel,
                rules=rules_for(partner),
            )
            for spec_id, loc in pairs
        }
        free = [pair for pair, problems in verdicts.items() if not problems]
        if not free:
            if any(all(p.kind == ProblemKind.COLLISION for p in problems) for problems in verdicts.values()):
                raise SlotGone(await self.alternatives(partner, req))
            asked = [p for pair, p in verdicts.items() if pair[0] == req.specialist_id]
            raise Unbookable(min(asked or verdicts.values(), key=len))
        self.rng.shuffle(free)
        free.sort(key=lambda pair: pair[0] != req.specialist_id)  # stable: the rest stays shuffled
        return free

    # --- reading and cancelling --------------------------------------------------------------------

    async def get(self, partner: Partner, public_id: str) -> tuple[AppointmentRow, PartnerBookingRow]:
        async with self.store.tx() as tx:
            found = await tx.partners.by_public_id(partner.id, public_id)
        if found is None:
            raise NotFound(public_id)
        return found

    async def changes(self, partner: Partner, after: int, limit: int = 100) -> list[PartnerEventRow]:
        """The partner's booking changes after a cursor, oldest first (the polling partner's feed)."""
        async with self.store.tx() as tx:
            return await tx.partners.changes(partner.id, after, limit)

    async def cancel(self, partner: Partner, public_id: str) -> tuple[AppointmentRow, PartnerBookingRow]:
        """The client cancels through the partner, until the partner's deadline; cancelling twice is harmless."""
        now = self._now()
        async with self.store.tx() as tx:
            found = await tx.partners.by_public_id(partner.id, public_id)
            if found is None:
                raise NotFound(public_id)
            appt = await tx.get_appointment(found[0].id, for_update=True)
            booking = found[1]
            assert appt is not None
            if appt.status == Status.CANCELLED and booking.refused_at is None:
                return appt, booking
            if appt.status == Status.CONFIRMED and not may_cancel(partner, appt, now):
                raise CancellationClosed(appt.id)
            try:
                await tx.transition(appt, Status.CANCELLED, actor=f"partner:{partner.id}", at=now)
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            await tx.partners.mark_partner_cancelled(booking, now)
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.booking.wake_outbox()
        return appt, booking

    # --- the specialist's refusal ----------------------------------------------------------------------

    def may_refuse(self, booking: PartnerBookingRow) -> bool:
        """The Refuse button works only inside the partner's refusal window."""
        return self._now() < booking.refusal_until

    async def refuse(self, appointment_id: int, telegram_id: int) -> AppointmentRow:
        """The specialist refuses a partner booking within the window: it is cancelled and the partner told."""
        now = self._now()
        async with self.store.tx() as tx:
            appt = await tx.get_appointment(appointment_id, for_update=True)
            booking = await tx.partners.booking(appointment_id)
            if appt is None or booking is None or not self.booking.may_decide(appt, telegram_id):
                raise NotAllowed(appointment_id)
            if appt.status != Status.CONFIRMED:
                raise AlreadyDecided(Status(appt.status))
            if not self.may_refuse(booking):
                raise RefusalClosed(appointment_id)
            role = "admin" if telegram_id in self.practice.practice.admins else "specialist"
            await tx.partners.mark_refused(booking, now)
            try:
                await tx.transition(appt, Status.CANCELLED, actor=f"{role}:{telegram_id}", at=now, reason=REFUSED)
            except InvalidTransition as exc:
                raise AlreadyDecided(exc.current) from None
            await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.booking.wake_outbox()
        return appt

    async def claim_notices(self) -> list[AppointmentRow]:
        """New partner bookings the specialist must be told of (claimed: told once across processes)."""
        async with self.store.tx() as tx:
            return await tx.partners.claim_notices(self._now())

    async def claim_partner_cancellations(self) -> list[AppointmentRow]:
        """Bookings the partner cancelled for its client, for the specialist to be told (once)."""
        async with self.store.tx() as tx:
            return await tx.partners.claim_partner_cancellations(self._now())

    async def claim_closed_refusals(self) -> list[AppointmentRow]:
        """Told partner bookings whose Refuse button must now disappear."""
        async with self.store.tx() as tx:
            return await tx.partners.claim_closed_refusals(self._now())
