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


def parse_object(text: str, start: datetime, end: datetime, zone: ZoneInfo) -> list[Busy]:
    """Busy intervals of one calendar object within [start, end); raises on data that does not parse."""
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
