"""Calendar objects -> Busy intervals: recurrences expanded here, and anything unreadable counts busy."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar

from scheduling.model import Busy

log = logging.getLogger(__name__)

_DTSTART = re.compile(r"^DTSTART(?P<params>;[^:\r\n]*)?:(?P<value>[0-9TZ]+)", re.MULTILINE)
_TZID = re.compile(r"TZID=\"?([^;:\"]+)")


def _aware(value: date | datetime, zone: ZoneInfo) -> datetime:
    """All-day dates start at midnight in the zone; floating times are read in the zone."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), zone).astimezone(UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone).astimezone(UTC)
    return value.astimezone(UTC)


def _free(component: Any) -> bool:
    return (
        str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT"
        or str(component.get("STATUS", "")).upper() == "CANCELLED"
    )


def _occurrence(component: Any, zone: ZoneInfo) -> Busy | None:
    start_v = component.decoded("DTSTART")
    if "DTEND" in component:
        end_v = component.decoded("DTEND")
    elif "DURATION" in component:
        end_v = start_v + component.decoded("DURATION")
    elif isinstance(start_v, datetime):
        end_v = start_v
    else:
        end_v = start_v + timedelta(days=1)
    start, end = _aware(start_v, zone), _aware(end_v, zone)
    if end <= start:
        # A zero-length event still marks a moment someone chose to block; keep it visible.
        end = start + timedelta(minutes=1)
    return Busy(start, end, str(component.get("SUMMARY", "")), str(component.get("UID", "")) or None)


# Occurrences one object may expand to; an object that would make more (FREQ=MINUTELY without end, an
# hourly rule running for years) is not expanded: the whole span its rule covers in the range counts busy.
MAX_OCCURRENCES = 2_000
_FREQ_SECONDS = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,
    "YEARLY": 365 * 86400,
}
_EXPANDING = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH")


def _rule_span(component: Any, start: datetime, end: datetime, zone: ZoneInfo) -> Busy | None:
    """The span to count busy instead of expanding, when the rule could make more than MAX_OCCURRENCES
    from its DTSTART to `end` (expanding also walks every occurrence before `start`); None when it cannot."""
    rule = component.get("RRULE")
    if rule is None or "DTSTART" not in component:
        return None
    rules = rule if isinstance(rule, list) else [rule]
    first = _aware(component.decoded("DTSTART"), zone)
    bound = 0.0
    last: datetime | None = None
    for r in rules:
        freq = str((r.get("FREQ") or [""])[0]).upper()
        step = _FREQ_SECONDS.get(freq, 1) * max(int((r.get("INTERVAL") or [1])[0]), 1)
        per_step = 1
        for part in _EXPANDING:
            per_step *= max(len(r.get(part) or []), 1)
        count = r.get("COUNT")
        until = r.get("UNTIL")
        stop = _aware(until[0], zone) if until else end
        estimate = max((min(stop, end) - first).total_seconds(), 0) / step * per_step + per_step
        if count:
            estimate = min(estimate, int(count[0]))
        bound += estimate
        if until:
            last = max(last or stop, stop)
        elif not count:
            last = end
    if bound <= MAX_OCCURRENCES:
        return None
    summary, uid = str(component.get("SUMMARY", "")), str(component.get("UID", "")) or None
    return Busy(max(first, start), min(last or end, end), summary, uid)  # may be empty: nothing in the range


_LINE = re.compile(r"([A-Za-z0-9-]+)((?:;[^:]*)?):(.*)")
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?")
# Properties of the event the quick reader looks at; any of the others it cannot handle sends it to the full one.
_WANTED = frozenset(("DTSTART", "DTEND", "SUMMARY", "UID", "TRANSP", "STATUS"))
_COMPLEX = frozenset(("RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID", "DURATION"))


def _when(params: str, value: str) -> date | datetime | None:
    """A DTSTART/DTEND value with no parameter but TZID (an Olson name) or VALUE; None for anything else."""
    tzid: str | None = None
    is_date = False
    for param in params.split(";")[1:]:
        key, _, val = param.partition("=")
        key = key.upper()
        if key == "TZID" and val and tzid is None:
            tzid = val
        elif key == "VALUE" and val.upper() in ("DATE", "DATE-TIME"):
            is_date = val.upper() == "DATE"
        else:
            return None
    m = _STAMP.fullmatch(value)
    if m is None or is_date != (m[4] is None):
        return None
    try:
        if is_date:
            return None if tzid else date(int(m[1]), int(m[2]), int(m[3]))
        naive = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]))
        if m[7]:
            return None if tzid else naive.replace(tzinfo=UTC)
        return naive.replace(tzinfo=_zone(tzid)) if tzid else naive
    except (ValueError, KeyError):
        return None


def _zone(tzid: str) -> ZoneInfo:
    """icalendar reads a TZID that names an Olson zone as that zone, whatever VTIMEZONE comes with it."""
    if tzid.startswith("/") or "\\" in tzid or ".." in tzid:
        raise KeyError(tzid)  # a vendor prefix or a path: left to icalendar's own lookup
    return ZoneInfo(tzid)


def _quick(text: str, start: datetime, end: datetime, zone: ZoneInfo) -> list[Busy] | None:
    """One plain event (no recurrence, DTSTART/DTEND of one kind, positive length) read without icalendar; else None."""
    # Anything else goes to parse_full, so both readers always agree (tests/test_caldav_busy.py compares them).
    lines = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "").split("\n")
    stack: list[str] = []
    calendars = events = 0
    props: dict[str, tuple[str, str]] = {}
    for line in lines:
        if not line:
            continue
        m = _LINE.fullmatch(line)
        if m is None:
            return None
        name, params, value = m[1].upper(), m[2], m[3]
        if name == "BEGIN":
            kind = value.strip().upper()
            stack.append(kind)
            if len(stack) == 1:
                calendars += 1
                if kind != "VCALENDAR" or calendars > 1:
                    return None
            elif kind == "VEVENT":
                events += 1
                if len(stack) != 2 or events > 1:
                    return None
            continue
        if name == "END":
            if not stack or stack.pop() != value.strip().upper():
                return None
            continue
        if not stack:
            return None
        if len(stack) == 2 and stack[1] == "VEVENT":
            if name in _COMPLEX or (name in _WANTED and (name in props or '"' in params or "\\" in value)):
                return None  # escapes are left to icalendar, whose unescaping has its own rules
            if name in _WANTED:
                props[name] = (params, value)
    if stack or events != 1 or "DTSTART" not in props or "DTEND" not in props:
        return None
    first = _when(*props["DTSTART"])
    last = _when(*props["DTEND"])
    if first is None or last is None or isinstance(first, datetime) != isinstance(last, datetime):
        return None
    if isinstance(first, datetime) and isinstance(last, datetime) and (first.tzinfo is None) != (last.tzinfo is None):
        return None
    b_start, b_end = _aware(first, zone), _aware(last, zone)
    if b_end <= b_start:
        return None
    transp = props.get("TRANSP", ("", "OPAQUE"))[1].upper()
    status = props.get("STATUS", ("", ""))[1].upper()
    if transp == "TRANSPARENT" or status == "CANCELLED" or not (b_start < end and start < b_end):
        return []
    return [Busy(b_start, b_end, props.get("SUMMARY", ("", ""))[1], props.get("UID", ("", ""))[1] or None)]


def parse_object(text: str, start: datetime, end: datetime, zone: ZoneInfo) -> list[Busy]:
    """Busy intervals of one calendar object within [start, end); raises on data that does not parse."""
    quick = _quick(text, start, end, zone)
    if quick is not None:
        return quick
    return parse_full(text, start, end, zone)


def parse_full(text: str, start: datetime, end: datetime, zone: ZoneInfo) -> list[Busy]:
    """parse_object through icalendar and recurring_ical_events, for every kind of object."""
    cal = Calendar.from_ical(text)
    heavy = [(c, b) for c in cal.walk("VEVENT") if (b := _rule_span(c, start, end, zone)) is not None]
    if heavy:
        return [b for c, b in heavy if b.end > b.start and not _free(c)]
    # Widen by a day each side: floating and all-day values are only placed in the zone afterwards.
    occurrences = recurring_ical_events.of(cal, components=["VEVENT"]).between(
        start - timedelta(days=1), end + timedelta(days=1)
    )
    out: list[Busy] = []
    for comp in occurrences:
        if _free(comp):
            continue
        b = _occurrence(comp, zone)
        if b is not None and b.overlaps(start, end):
            out.append(b)
    return out


def fallback(text: str, zone: ZoneInfo) -> list[Busy]:
    """Whatever span of a broken object can still be read: from DTSTART for a whole day."""
    m = _DTSTART.search(text.replace("\r\n ", "").replace("\n ", ""))
    if not m:
        return []
    value, params = m["value"], m["params"] or ""
    try:
        if "T" not in value:
            day = datetime.strptime(value[:8], "%Y%m%d").date()
            begin = _aware(day, zone)
        else:
            naive = datetime.strptime(value[:15], "%Y%m%dT%H%M%S")
            tz = m2[1] if (m2 := _TZID.search(params)) else None
            utc = value.endswith("Z")
            begin = naive.replace(tzinfo=UTC) if utc else _aware(naive, ZoneInfo(tz) if tz else zone)
    except (ValueError, KeyError):
        return []
    return [Busy(begin, begin + timedelta(days=1), "", None)]


def busy_of(
    objects: Iterable[tuple[str, str]],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    reported: set[str] | None = None,
) -> list[Busy]:
    """Busy intervals of (href, ical text) objects in [start, end); broken ones logged once per href."""
    out: list[Busy] = []
    for href, text in objects:
        out.extend(object_busy(href, text, start, end, zone, reported))
    out.sort(key=lambda b: (b.start, b.end))
    return out


def object_busy(
    href: str, text: str, start: datetime, end: datetime, zone: ZoneInfo, reported: set[str] | None = None
) -> list[Busy]:
    try:
        return parse_object(text, start, end, zone)
    except Exception as exc:
        if reported is None or href not in reported:
            # Only the href: summaries and descriptions may carry personal data.
            log.warning("unreadable calendar object %s counted busy (%s)", href, type(exc).__name__)
            if reported is not None:
                reported.add(href)
        return [b for b in fallback(text, zone) if b.overlaps(start, end)]
