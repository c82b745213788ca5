"""Clients' data as health data: what of a client leaves the database, decided here and only here.

Calendar events, the read-only feeds, exports and erasure all ask this module. Calendars and feeds
carry the minimum by default (the service and the client's initials); a practice, or one specialist,
may choose more with `[privacy] calendar_detail` / `feed_detail`. PrivacyService carries out the
client's rights (/privacy: export, withdrawal of consent, erasure) and the retention time.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scheduling.booking import BookingService
from scheduling.config import CalendarDetail, Practice
from scheduling.lifecycle import InvalidTransition
from scheduling.model import ACTIVE_STATUSES, IN_CALENDAR, Status
from scheduling.store import AppointmentRow, Store, Tx

# A booking dialog nobody touched for this long is forgotten, with whatever the client typed into it.
DRAFT_LIFETIME = timedelta(days=7)
# The retention sweep looks this often (each process): the query is cheap, but there is no hurry.
RETENTION_EVERY = timedelta(hours=1)
ERASURE = "erasure"  # the reason recorded on visits cancelled because their client's data was erased


@dataclass(frozen=True, slots=True)
class Shown:
    """What a calendar event or a feed may say about the client: None where it must stay out."""

    who: str | None  # initials, or the name; None when nothing is known (the client was erased)
    phone: str | None = None
    email: str | None = None
    note: str | None = None


def calendar_detail(practice: Practice, specialist_id: str) -> CalendarDetail:
    """How much of the client the specialist's calendar events carry."""
    spec = practice.specialist_by_id.get(specialist_id)
    own = spec.privacy.calendar_detail if spec is not None else None
    return own or practice.privacy.calendar_detail


def feed_detail(practice: Practice, specialist_id: str) -> CalendarDetail:
    """How much of the client the specialist's read-only feed carries (its own setting, minimal by default)."""
    spec = practice.specialist_by_id.get(specialist_id)
    own = spec.privacy.feed_detail if spec is not None else None
    return own or practice.privacy.feed_detail


def initials(name: str | None) -> str | None:
    """'Jan Maria Nowak' -> 'J. M. N.': enough for the specialist to recognise the visit, little to anyone else."""
    parts = [p for p in (name or "").replace("-", " ").split() if p[:1].isalpha()]
    return " ".join(f"{p[0].upper()}." for p in parts) or None


def client_shown(
    detail: CalendarDetail, *, name: str | None, phone: str | None, email: str | None, note: str | None
) -> Shown:
    """The client as a calendar or feed at `detail` may show them."""
    if detail == "full":
        return Shown(name or None, phone or None, email or None, note or None)
    if detail == "name":
        return Shown(name or None)
    return Shown(initials(name))


async def forget_old_drafts(store: Store, now: datetime) -> int:
    """Delete dialogs untouched for DRAFT_LIFETIME (`now`: wall-clock time, as drafts are stamped); how many."""
    async with store.tx() as tx:
        return await tx.delete_drafts_before(now - DRAFT_LIFETIME)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the last day of a shorter month)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    month += 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


@dataclass
class Erasure:
    """What erasing one client did: the visits cancelled (their specialists are to be told) and the events rewritten."""

    client_id: int
    cancelled: list[AppointmentRow] = field(default_factory=list)
    appointments: list[AppointmentRow] = field(default_factory=list)  # all of the client's, now anonymous
    rewritten: int = 0


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class PrivacyService:
    """The client's rights over their data: see it, take it away as a file, withdraw consent, have it erased."""

    def __init__(self, booking: BookingService) -> None:
        self.booking = booking
        self.practice: Practice = booking.practice
        self.store: Store = booking.store
        self._retention_checked: datetime | None = None

    # --- what is kept ------------------------------------------------------------------------------

    async def export(self, client_id: int) -> dict[str, Any]:
        """Everything stored about the client, as one JSON-ready object."""
        p = self.practice
        async with self.store.tx() as tx:
            client = await tx.get_client(client_id)
            if client is None:
                raise LookupError(client_id)
            consents = await tx.consents(client_id)
            appts = await tx.client_appointments(client_id)
            history = await tx.history_of([a.id for a in appts])
            series = await tx.client_series(client_id)
            messages = await tx.client_messages(client_id)
            emails = await tx.client_emails(client_id)
            waiting = await tx.client_waiting(client_id)
            partners = await tx.client_partner_refs(client_id)
            staff_notes = await tx.count_staff_notes(client_id)

        def names(service_id: str, specialist_id: str | None, location_id: str) -> dict[str, str | None]:
            service = p.service_by_id.get(service_id)
            spec = p.specialist_by_id.get(specialist_id or "")
            location = p.location_by_id.get(location_id)
            return {
                "service": str(service.name) if service else service_id,
                "specialist": spec.name if spec else specialist_id,
                "location": str(location.name) if location else location_id,
            }

        steps: dict[int, list[dict[str, Any]]] = {}
        for row in history:
            steps.setdefault(row.appointment_id, []).append({"at": _iso(row.at), "status": str(row.to_status)})
        return {
            "practice": str(p.practice.name),
            "exported_at": _iso(self.booking.clock()),
            "staff_notes": (
                f"The practice's staff keep {staff_notes} note(s) about you; ask the practice to see them."
                if staff_notes
                else "none"
            ),
            "client": {
                "name": client.name,
                "phone": client.phone,
                "email": client.email,
                "language": client.language,
                "telegram_id": client.telegram_id,
                "first_contact": _iso(client.created_at),
            },
            "consents": [
                {
                    "kind": c.kind,
                    "policy_version": c.policy_version,
                    "given": _iso(c.accepted_at),
                    "withdrawn": _iso(c.withdrawn_at),
                }
                for c in consents
            ],
            "appointments": [
                {
                    "id": a.id,
                    **names(a.service_id, a.specialist_id, a.location_id),
                    "channel": a.channel,
                    "start": _iso(a.start),
                    "end": _iso(a.end),
                    "status": str(a.status),
                    "note": a.note,
                    "cancelled_late": a.cancelled_late,
                    "series": a.series_id,
                    "booked": _iso(a.created_at),
                    "history": steps.get(a.id, []),
                }
                for a in appts
            ],
            "series": [
                {
                    "id": s.id,
                    **names(s.service_id, s.specialist_id, s.location_id),
                    "first_start": _iso(s.first_start),
                    "every_weeks": s.interval_weeks,
                    "visits": s.count,
                    "until": _iso(s.until),
                    "note": s.note,
                }
                for s in series
            ],
            "messages": [
                {
                    "appointment": m.appointment_id,
                    "direction": "to you" if m.to_client else "from you",
                    "text": m.text,
                    "written": _iso(m.created_at),
                }
                for m in messages
            ],
            "emails_waiting": [{"subject": e.subject, "body": e.body, "queued": _iso(e.created_at)} for e in emails],
            "waiting_list": [
                {
                    **names(w.service_id, w.specialist_id, w.location_id),
                    "from": w.first_day.isoformat(),
                    "to": w.last_day.isoformat(),
                    "status": w.status,
                    "asked": _iso(w.created_at),
                }
                for w in waiting
            ],
            "partner_references": [{"partner": r.partner_id, "reference": r.client_ref} for r in partners],
        }

    # --- withdrawing consent -----------------------------------------------------------------------

    async def withdraw(self, client_id: int) -> int:
        """Withdraw the client's consents; their notes (health information) are deleted, calendars rewritten.

        Their appointments stay (the next booking asks for consent again); returns how many notes went.
        """
        now = self.booking.clock()
        async with self.store.tx() as tx:
            await tx.withdraw_consents(client_id, now)
            changed = await tx.drop_client_notes(client_id)
            for appt_id in changed:
                appt = await tx.get_appointment(appt_id)
                if appt is not None and Status(appt.status) in IN_CALENDAR:
                    await tx.enqueue_sync(appt.id, appt.specialist_id, now)
        self.booking.wake_outbox()
        return len(changed)

    # --- erasure -----------------------------------------------------------------------------------

    async def erase(self, client_id: int, *, actor: str) -> Erasure:
        """Erase the client: upcoming visits cancelled, personal fields removed here and from calendar events.

        The appointments stay as anonymous history (statuses, times, who changed what); past visits'
        events are rewritten through the outbox without the client's name.
        """
        now = self.booking.clock()
        done = Erasure(client_id)
        async with self.store.tx() as tx:
            client = await tx.get_client(client_id)
            if client is None or client.erased_at is not None:
                return done
            appts = await tx.client_appointments(client_id)
            for appt in appts:
                upcoming = Status(appt.status) in ACTIVE_STATUSES and appt.end > now
                if upcoming and await self._cancel(tx, appt, actor, now):
                    done.cancelled.append(appt)
            await tx.erase_client(client, now)
            done.appointments = appts
            # One write per calendar resource (a series is one): cancelled visits leave, the rest lose the name.
            anchors: set[tuple[int, str]] = set()
            for appt in appts:
                if Status(appt.status) in IN_CALENDAR or appt in done.cancelled:
                    key = (await tx.calendar_anchor(appt.id), appt.specialist_id)
                    if key not in anchors:
                        anchors.add(key)
                        await tx.enqueue_sync(appt.id, appt.specialist_id, now)
            done.rewritten = len(anchors)
        self.booking.wake_outbox()
        return done

    async def _cancel(self, tx: Tx, appt: AppointmentRow, actor: str, now: datetime) -> bool:
        """Cancel an upcoming visit of a client being erased (no cancellation limit applies)."""
        try:
            await tx.transition(appt, Status.CANCELLED, actor=actor, at=now, reason=ERASURE)
        except InvalidTransition:
            return False
        if appt.reassign_to:
            await tx.set_appointment(appt, at=now, reassign_to=None)
        return True

    # --- retention ---------------------------------------------------------------------------------

    async def retention_sweep(self) -> list[Erasure]:
        """Erase clients whose last visit is `retention_months` past (at most once per RETENTION_EVERY)."""
        months = self.practice.privacy.retention_months
        now = self.booking.clock()
        if not months or (self._retention_checked and now - self._retention_checked < RETENTION_EVERY):
            return []
        self._retention_checked = now
        staff = {s.telegram_id for s in self.practice.specialists if s.telegram_id} | set(self.practice.practice.admins)
        async with self.store.tx() as tx:
            due = await tx.retention_due(months_before(now, months), staff)
        return [await self.erase(client.id, actor="system:retention") for client in due]
