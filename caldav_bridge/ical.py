"""EventSpec <-> iCalendar text: one VEVENT per appointment, in the location's zone with a VTIMEZONE."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from scheduling.calendar import EventSpec

PRODID = "-//bookingbot//caldav_bridge//EN"
LINK = "X-BOOKINGBOT-ID"
# Properties the bot owns: on a conflicting edit ours win, everything else the user added is kept.
OWNED = ("DTSTART", "DTEND", "DURATION", "STATUS", "SEQUENCE", "SUMMARY", "DESCRIPTION", "LOCATION", LINK)


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    """The moment in the zone, or in UTC when its wall time is ambiguous (the repeated autumn hour)."""
    wall = moment.astimezone(zone)
    # A TZID wall time always means its first occurrence (RFC 5545 3.3.5), so the second needs UTC.
    if wall.replace(fold=0).astimezone(UTC) != moment.astimezone(UTC):
        return moment.astimezone(UTC)
    return wall


def _fill(ev: Event, spec: EventSpec) -> None:
    zone = ZoneInfo(spec.tzid)
    for name in (*OWNED, "DTSTAMP", "UID"):
        ev.pop(name, None)
    ev.add("UID", spec.uid)
    ev.add("DTSTAMP", datetime.now(UTC).replace(microsecond=0))
    ev.add("DTSTART", _local(spec.start, zone))
    ev.add("DTEND", _local(spec.end, zone))
    ev.add("STATUS", spec.status)
    ev.add("SEQUENCE", spec.sequence)
    ev.add("SUMMARY", spec.summary)
    ev.add("DESCRIPTION", spec.description)
    ev.add("LOCATION", spec.location)
    ev.add(LINK, str(spec.appointment_id))


def _calendar(method: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    if method:
        cal.add("METHOD", method)
    return cal


def to_ical(spec: EventSpec) -> str:
    """The calendar object stored at `<uid>.ics` in the booking calendar."""
    cal = _calendar()
    ev = Event()
    _fill(ev, spec)
    cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical().decode("utf-8")


def ics_bytes(spec: EventSpec) -> bytes:
    """The .ics file a client gets attached (METHOD:PUBLISH, imports into any calendar app)."""
    cal = _calendar("PUBLISH")
    ev = Event()
    _fill(ev, spec)
    cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def merge(existing: str, spec: EventSpec) -> str:
    """Apply our fields to an event someone else may have edited, keeping the properties they added."""
    cal = Calendar.from_ical(existing)
    events = [c for c in cal.walk("VEVENT") if str(c.get("UID", "")) == spec.uid and "RECURRENCE-ID" not in c]
    if not events:
        return to_ical(spec)
    _fill(events[0], spec)
    # The zone may have changed with the location; keep only the VTIMEZONEs still referenced.
    cal.subcomponents = [c for c in cal.subcomponents if c.name != "VTIMEZONE"]
    cal.add_missing_timezones()
    return cal.to_ical().decode("utf-8")


def event_times(text: str | bytes) -> tuple[str, datetime, datetime, bool]:
    """UID, start and end (aware UTC) of the master VEVENT, and whether it is marked cancelled."""
    ev = next(c for c in Calendar.from_ical(text).walk("VEVENT") if "RECURRENCE-ID" not in c)
    start, end = ev.decoded("DTSTART"), ev.decoded("DTEND")
    if not isinstance(start, datetime) or not isinstance(end, datetime) or start.tzinfo is None:
        raise ValueError("not a timed event with a zone")
    cancelled = str(ev.get("STATUS", "")).upper() == "CANCELLED"
    return str(ev["UID"]), start.astimezone(UTC), end.astimezone(UTC), cancelled


def from_ical(text: str | bytes) -> EventSpec:
    """Read our event back (the master VEVENT); times come back in aware UTC."""
    cal = Calendar.from_ical(text)
    ev = next(c for c in cal.walk("VEVENT") if "RECURRENCE-ID" not in c)
    start = ev.decoded("DTSTART")
    end = ev.decoded("DTEND")
    tzid = ev["DTSTART"].params.get("TZID") or ev["DTEND"].params.get("TZID") or "UTC"
    link = ev.get(LINK)
    status = str(ev.get("STATUS", "TENTATIVE")).upper()
    return EventSpec(
        uid=str(ev["UID"]),
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        tzid=str(tzid),
        summary=str(ev.get("SUMMARY", "")),
        description=str(ev.get("DESCRIPTION", "")),
        location=str(ev.get("LOCATION", "")),
        status="CONFIRMED" if status == "CONFIRMED" else "TENTATIVE",
        sequence=int(ev.get("SEQUENCE", 0)),
        appointment_id=int(str(link)) if link is not None and str(link).strip().isdigit() else 0,
    )
