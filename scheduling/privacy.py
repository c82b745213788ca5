"""Clients' data as health data: what of a client leaves the database, decided here and only here.

Calendar events, the read-only feeds, exports and erasure all ask this module. Calendars and feeds
carry the minimum by default (the service and the client's initials); a practice, or one specialist,
may choose more with `[privacy] calendar_detail` / `feed_detail`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduling.config import CalendarDetail, Practice
from scheduling.store import Store

# A booking dialog nobody touched for this long is forgotten, with whatever the client typed into it.
DRAFT_LIFETIME = timedelta(days=7)


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
