"""What the domain needs from a specialist's calendar; caldav_bridge implements it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from scheduling.model import Busy
from scheduling.recurrence import SeenSeries


class CalendarUnavailable(Exception):
    """The calendar server could not be reached, refused us, or answered something unusable."""


@dataclass(frozen=True, slots=True)
class OverrideSpec:
    """One instance of a recurring event shown differently from its rule (RECURRENCE-ID)."""

    recurrence_id: datetime  # aware UTC: the instance's start under the rule
    start: datetime
    end: datetime
    status: Literal["TENTATIVE", "CONFIRMED"]


@dataclass(frozen=True, slots=True)
class RecurrenceSpec:
    """A weekly rule (COUNT or UNTIL), dates taken out of it (EXDATE) and changed instances (overrides)."""

    interval_weeks: int
    count: int | None
    until: datetime | None  # aware UTC, inclusive
    exdates: tuple[datetime, ...] = ()
    overrides: tuple[OverrideSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One appointment as it should stand in the specialist's booking calendar."""

    uid: str
    start: datetime  # aware UTC
    end: datetime  # aware UTC
    tzid: str  # the location's zone: DTSTART/DTEND carry it, with a VTIMEZONE
    summary: str
    description: str
    location: str
    status: Literal["TENTATIVE", "CONFIRMED"]
    sequence: int
    appointment_id: int
    recurrence: RecurrenceSpec | None = None  # a series: start/end are its first instance under the rule
    url: str = ""  # the visit's video room (URL and CONFERENCE, RFC 7986), if it has one


class CalendarPort(Protocol):
    async def busy(self, specialist_id: str, start: datetime, end: datetime, *, fresh: bool = False) -> list[Busy]:
        """Busy intervals of all the specialist's busy calendars in [start, end).

        fresh=False may answer from a cache refreshed recently; fresh=True asks the server now
        (incrementally where it can). Raises CalendarUnavailable when the answer cannot be trusted.
        """
        ...

    async def appointment_times(
        self, specialist_id: str, uids: Collection[str]
    ) -> dict[str, tuple[datetime, datetime] | None]:
        """Where our events stand in the booking calendar now, read fresh: uid -> (start, end) in UTC.

        A uid whose event was deleted or marked cancelled is missing; None means present but unreadable.
        Raises CalendarUnavailable when the server cannot tell.
        """
        ...

    async def series_state(self, specialist_id: str, uids: Collection[str]) -> dict[str, SeenSeries | None]:
        """Our recurring events as they stand in the booking calendar now, read fresh and expanded.

        A uid whose resource is not there is missing; None means present but unreadable.
        Raises CalendarUnavailable when the server cannot tell.
        """
        ...

    def booking_calendar_url(self, specialist_id: str) -> str:
        """The calendar the specialist's appointments are written to now; CalendarUnavailable if not connected."""
        ...

    async def put(self, specialist_id: str, event: EventSpec) -> str:
        """Create or update the appointment's event; returns the calendar's URL written to.

        Raises CalendarUnavailable to be retried later.
        """
        ...

    async def remove(self, specialist_id: str, uid: str, calendar_url: str | None = None) -> None:
        """Delete the appointment's event if it is there (from `calendar_url`, an earlier booking calendar
        of the same account, if given); raises CalendarUnavailable to be retried later."""
        ...
