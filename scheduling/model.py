"""Plain domain types shared by the slot engine, the rules and the booking service."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Channel(enum.StrEnum):
    ON_SITE = "on_site"
    VIDEO = "video"
    PHONE = "phone"
    CHAT = "chat"


class Status(enum.StrEnum):
    REQUESTED = "requested"
    PROPOSED = "proposed"  # booked by the practice for a client who uses the bot: waits for their answer
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    # A request to move another appointment, carried out: its time now belongs to that appointment.
    MOVED = "moved"
    DELETED = "deleted"  # removed by an admin: only the history row (who, when) remains


# Statuses whose appointment still occupies its time.
ACTIVE_STATUSES = frozenset({Status.REQUESTED, Status.PROPOSED, Status.CONFIRMED})
# Statuses that wait for someone's answer and lapse when nobody gives it in time.
PENDING_STATUSES = frozenset({Status.REQUESTED, Status.PROPOSED})
# Statuses whose event stays in the specialist's calendar (a visit that took place is history, not a gap).
IN_CALENDAR = ACTIVE_STATUSES | {Status.COMPLETED, Status.NO_SHOW}


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span [start, end) in aware UTC datetimes."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class Seats:
    """A group session with room left: a request for its service, place and start may take a seat."""

    service_id: str
    location_id: str
    free: int


@dataclass(frozen=True, slots=True)
class Busy:
    """Time a specialist cannot take: a calendar event, an appointment, or unreadable data."""

    start: datetime
    end: datetime
    label: str = ""
    uid: str | None = None
    seats: Seats | None = None  # a seat of a group session that still takes more clients
    # Epoch seconds of start and end, worked out once: the slot engine compares thousands of them per view,
    # and a calendar's cache hands out the same Busy objects view after view.
    t0: float = field(init=False, repr=False, compare=False)
    t1: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "t0", self.start.timestamp())
        object.__setattr__(self, "t1", self.end.timestamp())

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable start time for one specialist (UTC)."""

    start: datetime
    end: datetime
    specialist_id: str
    location_id: str
    channels: tuple[Channel, ...] = field(default_factory=tuple)
    seats_left: int | None = None  # a group session's free seats at this start (None: an ordinary visit)


class Flag(enum.StrEnum):
    """Staff markers on an appointment; never shown to the client nor written to the calendar."""

    FIRST = "first"  # first consultation
    ASAP = "asap"  # the client wants an earlier time if one frees up
