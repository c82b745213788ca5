"""The slot engine: free start times from weekly schedules, date exceptions, busy time and booking rules.

Pure functions without I/O; the clock is injected. The schedule and rule helpers here are also the
single source for scheduling.conflicts, so a slot offered is always a slot that passes the check.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import repeat
from math import inf
from zoneinfo import ZoneInfo

from scheduling.config import CLIENTS, WEEKDAYS, DateException, Practice, Service, Specialist
from scheduling.model import Busy, Channel, Slot

ALL_CHANNELS = frozenset(Channel)

# (start, end) in aware UTC datetimes, half-open.
Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Rules:
    """Whose booking is judged: the windows open to `audience` (None: every window), and its minimum notice.

    min_notice_hours None keeps each specialist's own; a partner's replaces it.
    """

    audience: str | None = CLIENTS
    min_notice_hours: float | None = None


CLIENT_RULES = Rules()


@dataclass(frozen=True, slots=True)
class OpenSpan:
    """Time a specialist works at a location, in UTC, with the channels offered then."""

    start: datetime
    end: datetime
    location_id: str
    channels: frozenset[Channel]


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (UTC), got {value!r}")


def local_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time on `day` as UTC; 24:00 (time.max) is the next midnight.

    Nonexistent times (spring gap) resolve forward, ambiguous ones (autumn) to the first occurrence.
    """
    if clock == time.max:
        return datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return datetime.combine(day, clock, zone).astimezone(UTC)


def _days(first: date, last: date) -> list[date]:
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]


def _subtract(spans: list[Span], cuts: list[Span]) -> list[Span]:
    for cut_start, cut_end in cuts:
        out: list[Span] = []
        for start, end in spans:
            if cut_end <= start or end <= cut_start:
                out.append((start, end))
                continue
            if start < cut_start:
                out.append((start, cut_start))
            if cut_end < end:
                out.append((cut_end, end))
        spans = out
    return spans


def open_spans(
    practice: Practice, specialist: Specialist, first_day: date, last_day: date, audience: str | None = CLIENTS
) -> list[OpenSpan]:
    """Working time open to `audience` (None: anyone) on local dates first_day..last_day: windows + extra - off."""
    # Sorted out once per call, not per day: a month's view visits each weekday's windows four times.
    weekly: dict[str, list[tuple[time, time, str, frozenset[Channel]]]] = {}
    for w in specialist.schedule:
        if audience in (None, *w.booking):
            weekly.setdefault(w.weekday, []).append((w.start, w.end, w.location, _offered(w.channels)))
    dated: dict[date, list[DateException]] = {}
    for exc in specialist.exceptions:
        if first_day <= exc.date <= last_day:
            dated.setdefault(exc.date, []).append(exc)
    result: list[OpenSpan] = []
    for day in _days(first_day, last_day):
        raw = [*weekly.get(WEEKDAYS[day.weekday()], ())]  # a copy: the day's extras are its own
        offs: list[tuple[time, time, str | None]] = []
        for exc in dated.get(day, ()):
            if exc.kind == "extra" and exc.start and exc.end and exc.location:
                if audience in (None, *exc.booking):
                    raw.append((exc.start, exc.end, exc.location, _offered(exc.channels)))
            elif exc.kind == "off":
                offs.append((exc.start or time(0), exc.end or time.max, exc.location))
        for start, end, location_id, offered in raw:
            zone = practice.zone(location_id)
            span = (local_to_utc(day, start, zone), local_to_utc(day, end, zone))
            if span[1] <= span[0]:
                continue
            cuts = [
                (local_to_utc(day, off_start, zone), local_to_utc(day, off_end, zone))
                for off_start, off_end, off_location in offs
                if off_location in (None, location_id)
            ]
            result.extend([OpenSpan(s, e, location_id, offered) for s, e in _subtract([span], cuts)])
    return result


def _offered(channels: list[Channel] | None) -> frozenset[Channel]:
    """The channels a window offers; none named means all."""
    return ALL_CHANNELS if channels is None else frozenset(channels)


def merge(spans: Sequence[Span]) -> list[Span]:
    """Sorted, disjoint union of spans; touching spans join (09-12 + 12-14 = 09-14)."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def covers(merged: Sequence[Span], starts: Sequence[datetime], start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one span of a merged list (`starts` = its span starts)."""
    i = bisect_right(starts, start) - 1
    return i >= 0 and merged[i][1] >= end


@dataclass(frozen=True, slots=True)
class Coverage:
    """Merged working time per channel at one location, ready for bisect lookups."""

    by_channel: dict[Channel, tuple[list[Span], list[datetime]]]

    def channels_for(self, start: datetime, end: datetime) -> tuple[Channel, ...]:
        """The channels (in preference order) whose working time holds [start, end) entirely."""
        return tuple([c for c, (spans, starts) in self.by_channel.items() if covers(spans, starts, start, end)])


def service_channels(practice: Practice, service: Service, location_id: str) -> tuple[Channel, ...]:
    """Channels a service can use at a location, in the service's order; no on-site visit at an online one."""
    online = practice.location_by_id[location_id].kind == "online"
    return tuple(c for c in service.channels if not (online and c == Channel.ON_SITE))


def coverage(
    spans: Sequence[OpenSpan], location_id: str, channels: Sequence[Channel], *, epoch: bool = False
) -> Coverage:
    """Per channel, the merged spans at the location offering it (as epoch seconds if `epoch`)."""
    by_channel: dict[Channel, tuple[list[Span], list[datetime]]] = {}
    for channel in channels:
        here = [(s.start, s.end) for s in spans if s.location_id == location_id and channel in s.channels]
        if epoch:
            here = [(start.timestamp(), end.timestamp()) for start, end in here]  # type: ignore[misc]
        merged = merge(here)
        by_channel[channel] = (merged, [s for s, _ in merged])
    return Coverage(by_channel)


def on_grid(local: datetime, service: Service) -> bool:
    """Whether a local wall-clock start is on the service's grid (minutes since midnight % start_every)."""
    if local.second or local.microsecond:
        return False
    if service.full_hours_only and local.minute:
        return False
    return (local.hour * 60 + local.minute) % service.start_every == 0


def last_bookable_day(practice: Practice, specialist_id: str, now: datetime, location_id: str | None = None) -> date:
    """The last local date at the location (default: the practice zone) the specialist's horizon reaches."""
    _require_aware(now, "now")
    zone = practice.zone(location_id) if location_id else ZoneInfo(practice.practice.timezone)
    return now.astimezone(zone).date() + timedelta(days=practice.specialist_by_id[specialist_id].horizon_days)


def booking_window(
    practice: Practice,
    specialist_id: str,
    now: datetime,
    location_id: str | None = None,
    min_notice_hours: float | None = None,
) -> tuple[datetime, datetime]:
    """Earliest allowed start (now + min notice) and the end of the horizon (exclusive), both UTC.

    The horizon ends after local day today + horizon_days at the location (default: the practice zone).
    `min_notice_hours` replaces the specialist's own notice (a partner's rules).
    """
    _require_aware(now, "now")
    spec = practice.specialist_by_id[specialist_id]
    zone = practice.zone(location_id) if location_id else ZoneInfo(practice.practice.timezone)
    notice = spec.min_notice_hours if min_notice_hours is None else min_notice_hours
    earliest = max(now, now + timedelta(hours=notice)).astimezone(UTC)
    return earliest, local_to_utc(last_bookable_day(practice, specialist_id, now, location_id), time.max, zone)


# Busy time as its spans' epoch-second starts and, apart, their ends, each sorted; the starts end in +inf.
BusyIndex = tuple[list[float], list[float]]


def busy_index(busy: Sequence[Busy]) -> BusyIndex:
    """Busy time indexed for `free_of`; a span ending before it starts is no busy time.

    Seconds in plain float lists, not merged datetime spans: C sorts those fastest, and 2,000 items are common.
    """
    starts = [b.t0 for b in busy if b.t1 >= b.t0]
    ends = [b.t1 for b in busy]
    if len(ends) != len(starts):
        ends = [b.t1 for b in busy if b.t1 >= b.t0]
    starts.sort()
    starts.append(inf)
    ends.sort()
    return starts, ends


def free_of(index: BusyIndex, starts: Sequence[float], blocked: int) -> list[float]:
    """Of ascending starts, those s whose [s, s + blocked) meets no busy span (begun before s + blocked, ended after s).

    Each of the n spans that end by s began before s + blocked too, so s is free when the (n+1)th start is not.
    """
    if not starts:
        return []
    begins, ends = index
    # Every count lies between those of the first and last start: search only there.
    lo, hi = bisect_right(ends, starts[0]), bisect_right(ends, starts[-1])
    ended = map(bisect_right, repeat(ends), starts, repeat(lo), repeat(hi))
    return [s for s, n in zip(starts, ended, strict=True) if begins[n] >= s + blocked]


_MIDNIGHT = time(0)


def _grid_starts(day: date, zone: ZoneInfo, service: Service, lo: int, hi: int) -> list[float]:
    """Epoch seconds, ascending, of instants on `day` whose local wall clock is on the grid, minutes in [lo, hi)."""
    if lo >= hi:
        return []
    step = service.start_every
    first = -(-lo // step) * step
    midnight = datetime.combine(day, _MIDNIGHT, zone)
    if midnight.utcoffset() == datetime.combine(date.fromordinal(day.toordinal() + 1), _MIDNIGHT, zone).utcoffset():
        # No clock change that day: local minutes map to instants by plain arithmetic.
        base = midnight.timestamp()
        seconds = range(first * 60, hi * 60, step * 60)
        if service.full_hours_only:
            return [base + second for second in seconds if not second % 3600]
        return [base + second for second in seconds]
    found: list[float] = []
    for minute in range(first, hi, step):
        naive = datetime.combine(day, time(minute // 60, minute % 60))
        if not on_grid(naive, service):
            continue
        utc = naive.replace(tzinfo=zone).astimezone(UTC)
        # A wall-clock time in the spring gap does not exist: skip it rather than shift it onto another.
        if utc.astimezone(zone).replace(tzinfo=None) != naive:
            continue
        found.append(utc.timestamp())
        # In the autumn overlap the same wall-clock time names two instants; both are real starts.
        second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if second != utc:
            found.append(second.timestamp())
    found.sort()
    return found


def _minute_ranges(specialist: Specialist, location_id: str, days: list[date]) -> list[tuple[int, int]]:
    """Per day, the local wall-clock minutes [lo, hi) that can hold a start at the location (cheap bound)."""

    def minutes(start: time, end: time) -> tuple[int, int]:
        return start.hour * 60 + start.minute, 24 * 60 if end == time.max else end.hour * 60 + end.minute

    def widest(bounds: list[tuple[int, int]]) -> tuple[int, int]:
        return (min(lo for lo, _ in bounds), max(hi for _, hi in bounds)) if bounds else (0, 0)

    weekly: dict[str, list[tuple[int, int]]] = {weekday: [] for weekday in WEEKDAYS}
    for w in specialist.schedule:
        if w.location == location_id:
            weekly[w.weekday].append(minutes(w.start, w.end))
    extra: dict[date, list[tuple[int, int]]] = {}
    for e in specialist.exceptions:
        if e.kind == "extra" and e.location == location_id and e.start and e.end:
            extra.setdefault(e.date, []).append(minutes(e.start, e.end))
    by_weekday = [widest(weekly[weekday]) for weekday in WEEKDAYS]
    return [
        widest(weekly[WEEKDAYS[day.weekday()]] + extra[day]) if day in extra else by_weekday[day.weekday()]
        for day in days
    ]


@dataclass(frozen=True, slots=True)
class _Query:
    practice: Practice
    service: Service
    location_id: str
    channel: Channel | None
    now: datetime
    rules: Rules


def _specialist_days(
    q: _Query, specialist: Specialist, days: list[date], busy: Sequence[Busy]
) -> Iterator[tuple[date, Iterator[Slot]]]:
    """For each requested local date, an iterator of that specialist's free slots (lazy per day)."""
    if q.service.id not in specialist.services or not days:
        return
    zone = q.practice.zone(q.location_id)
    earliest, horizon_end = booking_window(q.practice, specialist.id, q.now, q.location_id, q.rules.min_notice_hours)
    wanted = [c for c in service_channels(q.practice, q.service, q.location_id) if q.channel in (None, c)]
    if not wanted:
        return
    # Neighbouring days too, so a window running to 24:00 joins one starting at 00:00.
    spans = open_spans(
        q.practice, specialist, days[0] - timedelta(days=1), days[-1] + timedelta(days=1), q.rules.audience
    )
    cover = coverage(spans, q.location_id, wanted, epoch=True)
    busy_free = busy_index(busy)

    # Group sessions of this service and place with seats left: their start stays offered, whatever else they block.
    def joins(b: Busy) -> bool:
        return b.seats is not None and b.seats.service_id == q.service.id and b.seats.location_id == q.location_id

    joinable = {b.t0: b.seats.free for b in busy if b.seats is not None and joins(b)}
    # Per such start, the busy time other than that session's own seats.
    rest = {at: busy_index([b for b in busy if not (b.t0 == at and joins(b))]) for at in joinable}
    length = q.service.duration * 60
    blocked = (q.service.duration + q.service.buffer_after) * 60
    first_start, past_end = earliest.timestamp(), horizon_end.timestamp()
    seats = q.service.seats if q.service.seats > 1 else None
    duration = timedelta(seconds=length)

    def day_slots(free: list[float]) -> Iterator[Slot]:
        for start in free:
            channels = cover.channels_for(start, start + length)  # type: ignore[arg-type]
            if not channels:
                continue
            begins = datetime.fromtimestamp(start, UTC)
            yield Slot(
                begins,
                begins + duration,
                specialist.id,
                q.location_id,
                channels,
                joinable.get(start) or seats,
            )

    for day, (lo, hi) in zip(days, _minute_ranges(specialist, q.location_id, days), strict=True):
        starts = _grid_starts(day, zone, q.service, lo, hi)
        starts = starts[bisect_left(starts, first_start) : bisect_left(starts, past_end)]
        # Busy first, then the channels: in a crowded calendar most starts are busy.
        if joinable:
            free = free_of(busy_free, [s for s in starts if s not in joinable], blocked)
            free += [s for s in starts if s in joinable and free_of(rest[s], [s], blocked)]
            free.sort()
        else:
            free = free_of(busy_free, starts, blocked)
        yield day, day_slots(free)


def _query_days(practice: Practice, location_id: str, first_day: date, last_day: date, now: datetime) -> list[date]:
    _require_aware(now, "now")
    today = now.astimezone(practice.zone(location_id)).date()
    return _days(max(first_day, today), last_day)


def free_slots(
    practice: Practice,
    *,
    service_id: str,
    location_id: str,
    specialist_ids: Sequence[str],
    first_day: date,
    last_day: date,
    busy: Mapping[str, Sequence[Busy]],
    now: datetime,
    channel: Channel | None = None,
    rules: Rules = CLIENT_RULES,
) -> list[Slot]:
    """Free start times (sorted by start, then the order of specialist_ids) on local dates at the location."""
    q = _Query(practice, practice.service_by_id[service_id], location_id, channel, now, rules)
    days = _query_days(practice, location_id, first_day, last_day, now)
    order = list(dict.fromkeys(specialist_ids))
    found: list[tuple[datetime, int, Slot]] = []
    for rank, sid in enumerate(order):
        spec = practice.specialist_by_id[sid]
        for _, slots in _specialist_days(q, spec, days, busy.get(sid, ())):
            found.extend((slot.start, rank, slot) for slot in slots)
    found.sort(key=lambda item: (item[0], item[1]))
    return [slot for _, _, slot in found]


def days_with_slots(
    practice: Practice,
    *,
    service_id: str,
    location_id: str,
    specialist_ids: Sequence[str],
    first_day: date,
    last_day: date,
    busy: Mapping[str, Sequence[Busy]],
    now: datetime,
    channel: Channel | None = None,
    rules: Rules = CLIENT_RULES,
) -> set[date]:
    """Local dates with at least one free slot; stops at the first slot of each day."""
    q = _Query(practice, practice.service_by_id[service_id], location_id, channel, now, rules)
    days = _query_days(practice, location_id, first_day, last_day, now)
    result: set[date] = set()
    for sid in dict.fromkeys(specialist_ids):
        spec = practice.specialist_by_id[sid]
        for day, slots in _specialist_days(q, spec, days, busy.get(sid, ())):
            if day not in result and next(slots, None) is not None:
                result.add(day)
    return result
