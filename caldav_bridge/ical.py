"""EventSpec <-> iCalendar text: one VEVENT per appointment, in the location's zone with a VTIMEZONE."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar, Event, Timezone

from scheduling.calendar import EventSpec
from scheduling.recurrence import SeenSeries

PRODID = "-//bookingbot//caldav_bridge//EN"
LINK = "X-BOOKINGBOT-ID"
# Properties the bot owns: on a conflicting edit ours win, everything else the user added is kept.
OWNED = (
    "DTSTART",
    "DTEND",
    "DURATION",
    "STATUS",
    "SEQUENCE",
    "SUMMARY",
    "DESCRIPTION",
    "LOCATION",
    "URL",
    "CONFERENCE",
    LINK,
    "RRULE",
    "RDATE",
    "EXDATE",
    "RECURRENCE-ID",
)
# Recurring events: how far ahead an unbounded rule someone else wrote is expanded when reading it back.
READ_AHEAD = timedelta(days=2 * 366)


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
    if spec.url:
        ev.add("URL", spec.url)
        ev.add("CONFERENCE", spec.url, parameters={"VALUE": "URI", "FEATURE": "AUDIO,VIDEO"})
    if spec.appointment_id:
        ev.add(LINK, str(spec.appointment_id))
    rec = spec.recurrence
    if rec is None:
        return
    rule: dict[str, object] = {"FREQ": "WEEKLY", "INTERVAL": rec.interval_weeks}
    if rec.count is not None:
        rule["COUNT"] = rec.count
    else:
        # With a TZID DTSTART, UNTIL must be in UTC (RFC 5545 3.3.10).
        rule["UNTIL"] = rec.until.astimezone(UTC) if rec.until else None
    ev.add("RRULE", rule)
    if rec.exdates:
        # The same form as DTSTART, or expanders do not match them to instances.
        ev.add("EXDATE", [m.astimezone(zone) for m in rec.exdates])


def _overrides(spec: EventSpec) -> list[Event]:
    """One VEVENT per instance shown differently from the rule, same UID, with RECURRENCE-ID."""
    if spec.recurrence is None:
        return []
    zone = ZoneInfo(spec.tzid)
    out: list[Event] = []
    for o in spec.recurrence.overrides:
        ev = Event()
        ev.add("UID", spec.uid)
        ev.add("DTSTAMP", datetime.now(UTC).replace(microsecond=0))
        ev.add("RECURRENCE-ID", o.recurrence_id.astimezone(zone))
        ev.add("DTSTART", _local(o.start, zone))
        ev.add("DTEND", _local(o.end, zone))
        ev.add("STATUS", o.status)
        ev.add("SEQUENCE", spec.sequence)
        ev.add("SUMMARY", spec.summary)
        ev.add("DESCRIPTION", spec.description)
        ev.add("LOCATION", spec.location)
        ev.add(LINK, str(spec.appointment_id))
        out.append(ev)
    return out


def _calendar(method: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    if method:
        cal.add("METHOD", method)
    return cal


@lru_cache(maxsize=64)
def _vtimezone(tzid: str) -> bytes:
    try:
        return Timezone.from_tzid(tzid).to_ical()
    except ValueError:
        return b""  # not a zone icalendar knows: left out, as add_missing_timezones does


def serialise(cal: Calendar) -> bytes:
    """cal.to_ical() after cal.add_missing_timezones(), byte for byte; `cal` must hold no VTIMEZONE itself."""
    # Each VTIMEZONE lists decades of transitions: building and folding it per call took most of the time of
    # every calendar write and .ics file, so _vtimezone keeps it once per process.
    zones = b"".join(_vtimezone(tzid) for tzid in sorted(cal.get_missing_tzids()))
    body = cal.to_ical()
    if not zones:
        return body
    # add_missing_timezones puts them before every other component: after the calendar's own properties.
    at = body.find(b"\r\nBEGIN:")
    at = body.rfind(b"END:VCALENDAR") if at < 0 else at + 2
    return body[:at] + zones + body[at:]


def _object(spec: EventSpec, method: str | None = None) -> Calendar:
    cal = _calendar(method)
    ev = Event()
    _fill(ev, spec)
    cal.add_component(ev)
    for override in _overrides(spec):
        cal.add_component(override)
    return cal


def to_ical(spec: EventSpec) -> str:
    """The calendar object stored at `<uid>.ics` in the booking calendar."""
    return serialise(_object(spec)).decode("utf-8")


def ics_bytes(spec: EventSpec, *more: EventSpec, cancel: bool = False) -> bytes:
    """The .ics file a client gets attached (METHOD:PUBLISH); several events when a series was split in two."""
    # With `cancel`: METHOD:CANCEL and STATUS:CANCELLED under the same UID and the cancellation's SEQUENCE,
    # so calendar apps remove the copy they imported.
    cal = _object(spec, "CANCEL" if cancel else "PUBLISH")
    for other in more:
        extra = _object(other)
        cal.subcomponents += [c for c in extra.subcomponents if c.name == "VEVENT"]
    if cancel:
        for ev in cal.walk("VEVENT"):
            ev.pop("STATUS", None)
            ev.add("STATUS", "CANCELLED")
    return serialise(cal)


def _override_of(component: Any, uid: str) -> bool:
    return component.name == "VEVENT" and "RECURRENCE-ID" in component and str(component.get("UID", "")) == uid


def merge(existing: str, spec: EventSpec) -> str:
    """Apply our fields to an event someone else may have edited, keeping the properties they added."""
    cal = Calendar.from_ical(existing)
    events = [c for c in cal.walk("VEVENT") if str(c.get("UID", "")) == spec.uid and "RECURRENCE-ID" not in c]
    if not events:
        return to_ical(spec)
    _fill(events[0], spec)
    # Our rows are the truth about every instance: their overrides replace whatever stood there.
    cal.subcomponents = [c for c in cal.subcomponents if not _override_of(c, spec.uid)]
    for override in _overrides(spec):
        cal.add_component(override)
    # The zone may have changed with the location; keep only the VTIMEZONEs still referenced.
    cal.subcomponents = [c for c in cal.subcomponents if c.name != "VTIMEZONE"]
    return serialise(cal).decode("utf-8")


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
        url=str(ev.get("URL", "")),
    )


def _utc(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return datetime.combine(value, time(23, 59, 59), zone).astimezone(UTC)  # an all-day UNTIL: that whole day
    if value.tzinfo is None:
        return value.replace(tzinfo=zone).astimezone(UTC)
    return value.astimezone(UTC)


def series_seen(text: str | bytes, zone: ZoneInfo) -> SeenSeries:
    """A recurring event as it stands: the master's start and weekly rule, and every instance it expands to.

    Instances marked cancelled are left out, as a calendar app shows them. Raises on data that does not parse.
    """
    cal = Calendar.from_ical(text)
    master = next(c for c in cal.walk("VEVENT") if "RECURRENCE-ID" not in c)
    start = _utc(master.decoded("DTSTART"), zone)
    rrule = master.get("RRULE")
    interval: int | None = None
    count: int | None = None
    until: datetime | None = None
    if rrule is not None:
        if isinstance(rrule, list):
            rrule = rrule[0]
        freq = [str(f).upper() for f in rrule.get("FREQ", [])]
        extra = set(rrule) - {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY"}
        if freq == ["WEEKLY"] and not extra:
            interval = int(rrule.get("INTERVAL", [1])[0])
        if rrule.get("COUNT"):
            count = int(rrule["COUNT"][0])
        if rrule.get("UNTIL"):
            until = _utc(rrule["UNTIL"][0], zone)
    occurrences: dict[datetime, tuple[datetime, datetime]] = {}
    for comp in recurring_ical_events.of(cal, components=["VEVENT"]).between(
        start - timedelta(days=1), start + READ_AHEAD
    ):
        if str(comp.get("STATUS", "")).upper() == "CANCELLED":
            continue
        rid = comp.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in comp else comp.decoded("DTSTART")
        begin = _utc(comp.decoded("DTSTART"), zone)
        if "DTEND" in comp:
            end = _utc(comp.decoded("DTEND"), zone)
        elif "DURATION" in comp:
            end = begin + comp.decoded("DURATION")
        else:
            end = begin
        occurrences[_utc(rid, zone)] = (begin, end)
    return SeenSeries(start, interval, count, until, occurrences)
