"""Weekly recurrence rules: their instances in local wall time, and how rows map to and from a calendar.

Pure functions without I/O. A rule's instances keep their local wall time across DST changes (a weekly
18:00 stays 18:00 in March and October), exactly as an iCalendar RRULE with a TZID DTSTART expands.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# A course of therapy runs months, not years; a longer rule is a typo.
MAX_OCCURRENCES = 52
MAX_INTERVAL_WEEKS = 4


class Scope(enum.StrEnum):
    """Which visits of a series a change applies to."""

    THIS = "this"
    FOLLOWING = "following"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Rule:
    """Every `interval_weeks` weeks from `start` (aware UTC), local wall time in `tzid`; `count` or `until` ends it.

    `until` is inclusive: the last instance may start at that moment (aware UTC), as RRULE's UNTIL.
    """

    start: datetime
    tzid: str
    interval_weeks: int
    count: int | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("rule start must be aware")
        if not 1 <= self.interval_weeks <= MAX_INTERVAL_WEEKS:
            raise ValueError(f"interval must be 1-{MAX_INTERVAL_WEEKS} weeks")
        if (self.count is None) == (self.until is None):
            raise ValueError("a rule ends either after a count or at a date")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be positive")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tzid)

    def instances(self) -> list[datetime]:
        """Start of every instance, aware UTC, in order (at most MAX_OCCURRENCES)."""
        zone = self.zone
        wall = self.start.astimezone(zone).replace(tzinfo=None)
        step = timedelta(weeks=self.interval_weeks)
        out: list[datetime] = []
        limit = self.count if self.count is not None else MAX_OCCURRENCES
        for i in range(min(limit, MAX_OCCURRENCES)):
            moment = (wall + i * step).replace(tzinfo=zone).astimezone(UTC)
            if self.until is not None and moment > self.until:
                break
            out.append(moment)
        return out

    def ended_before(self, moment: datetime) -> Rule:
        """The same rule stopped so that its last instance starts before `moment` (UNTIL, as after a split)."""
        kept = [m for m in self.instances() if m < moment]
        if not kept:
            raise ValueError("nothing of the rule would remain")
        return replace(self, count=None, until=kept[-1])

    def from_instance(self, moment: datetime, new_start: datetime) -> Rule:
        """The rule's instances from `moment` on, shifted so the first starts at `new_start` (the split's new half)."""
        rest = [m for m in self.instances() if m >= moment]
        if not rest:
            raise ValueError("the rule has no instance from that moment")
        return Rule(new_start, self.tzid, self.interval_weeks, count=len(rest))


def local_shift(moment: datetime, old_start: datetime, new_start: datetime, zone: ZoneInfo) -> datetime:
    """Apply the wall-clock change old_start -> new_start to `moment`: 18:00 -> 17:00 is 17:00 in any season."""
    delta = new_start.astimezone(zone).replace(tzinfo=None) - old_start.astimezone(zone).replace(tzinfo=None)
    return (moment.astimezone(zone).replace(tzinfo=None) + delta).replace(tzinfo=zone).astimezone(UTC)


def until_date(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """ "Until this date" as an inclusive UNTIL moment: the rule's wall time on that local day."""
    return datetime.combine(day, clock, zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One booked instance of a series as the calendar must show it."""

    recurrence_id: datetime  # the instance's start under the rule, aware UTC
    start: datetime
    end: datetime
    tentative: bool


@dataclass(frozen=True, slots=True)
class Layout:
    """A series in iCalendar terms: the master's status, dates taken out (EXDATE) and instances changed (overrides)."""

    tentative: bool
    exdates: tuple[datetime, ...]
    overrides: tuple[Occurrence, ...]


def layout(rule: Rule, duration: timedelta, shown: Iterable[Occurrence]) -> Layout | None:
    """How the series' calendar resource must look so that its expansion is exactly `shown`; None: nothing to show."""
    by_id = {o.recurrence_id: o for o in shown}
    if not by_id:
        return None
    instances = rule.instances()
    # The master's status is the most common one, so overrides are few.
    tentative = sum(o.tentative for o in by_id.values()) * 2 > len(by_id)
    exdates = tuple(m for m in instances if m not in by_id)
    overrides = tuple(
        o
        for m in instances
        if (o := by_id.get(m)) is not None and (o.start != m or o.end != m + duration or o.tentative != tentative)
    )
    stray = set(by_id) - set(instances)
    if stray:
        raise ValueError(f"{len(stray)} occurrence(s) are not instances of the rule")
    return Layout(tentative, exdates, overrides)


@dataclass(frozen=True, slots=True)
class SeenSeries:
    """A series resource as read from the calendar: its rule's start and end, and what it expands to."""

    start: datetime  # the master's DTSTART, aware UTC
    interval_weeks: int | None  # None: not a plain weekly rule
    count: int | None
    until: datetime | None
    occurrences: Mapping[datetime, tuple[datetime, datetime]] = field(default_factory=dict)  # RECURRENCE-ID -> times


@dataclass(frozen=True, slots=True)
class RowState:
    """What flow-back needs of one occurrence row; only `actionable` ones (active, not begun) may change."""

    id: int
    recurrence_id: datetime
    start: datetime
    end: datetime
    actionable: bool


@dataclass(frozen=True, slots=True)
class FlowBack:
    """What the calendar says happened: rows moved (id -> new recurrence id, start, end), rows removed, new rule."""

    moved: dict[int, tuple[datetime, datetime, datetime]]
    rekeyed: dict[int, datetime]  # rows whose recurrence id changed with the rule, time unchanged
    removed: list[int]
    rule: Rule

    @property
    def empty(self) -> bool:
        return not (self.moved or self.rekeyed or self.removed)


class Unclear(Exception):
    """The calendar's copy cannot be matched to the rows safely (e.g. its rule now ends before a past visit)."""


def _seen_rule(rule: Rule, seen: SeenSeries) -> Rule:
    interval = seen.interval_weeks or rule.interval_weeks
    if (seen.start, interval, seen.count, seen.until) == (rule.start, rule.interval_weeks, rule.count, rule.until):
        return rule
    try:
        return Rule(seen.start, rule.tzid, interval, count=seen.count, until=seen.until)
    except ValueError:
        # A rule we would not write (no end, another frequency): keep our length, follow its start.
        return Rule(seen.start, rule.tzid, interval, count=len(rule.instances()))


def flow_back(rule: Rule, rows: Sequence[RowState], seen: SeenSeries) -> FlowBack:
    """Match the rows of a series to a fresh expansion of its calendar resource.

    An actionable row whose instance is gone (EXDATE, a cancelled override, the rule ended) is removed; an
    instance at a new time moves its row. When the calendar app changed the series' rule (its DTSTART, its
    end), instance i of the old rule is instance i of the new one. Raises Unclear when that cannot hold.
    """
    new_rule = _seen_rule(rule, seen)
    old_instances = rule.instances()
    new_instances = new_rule.instances()
    index = {m: i for i, m in enumerate(old_instances)}
    moved: dict[int, tuple[datetime, datetime, datetime]] = {}
    rekeyed: dict[int, datetime] = {}
    removed: list[int] = []
    for row in rows:
        key = row.recurrence_id
        if new_rule is not rule:
            i = index.get(row.recurrence_id)
            if i is None:
                raise Unclear(f"row {row.id} is not an instance of its rule")
            if i >= len(new_instances):
                if not row.actionable:
                    raise Unclear(f"the calendar's rule ends before row {row.id}, which is history")
                removed.append(row.id)  # the series now ends before this visit
                continue
            key = new_instances[i]
        if not row.actionable:
            if key != row.recurrence_id:
                rekeyed[row.id] = key
            continue
        times = seen.occurrences.get(key)
        if times is None:
            removed.append(row.id)
        elif times != (row.start, row.end):
            # A row that followed the rule follows the rule's new time; a row moved on its own keeps its move
            # unless the calendar shows it elsewhere.
            moved[row.id] = (key, *times)
        elif key != row.recurrence_id:
            rekeyed[row.id] = key
    return FlowBack(moved, rekeyed, removed, new_rule)
