"""Rule checks for one proposed appointment: every problem at once, with the same rules as the slot engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from scheduling.config import Practice
from scheduling.model import Busy, Channel
from scheduling.slots import (
    CLIENT_RULES,
    Rules,
    booking_window,
    coverage,
    covers,
    merge,
    on_grid,
    open_spans,
    service_channels,
)


class ProblemKind(StrEnum):
    PAST = "past"
    LEAD_TIME = "lead_time"
    BEYOND_HORIZON = "beyond_horizon"
    OUTSIDE_LOCATION_SCHEDULE = "outside_location_schedule"
    OUTSIDE_ANY_SCHEDULE = "outside_any_schedule"
    COLLISION = "collision"
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"
    SERVICE_NOT_OFFERED = "service_not_offered"
    OFF_GRID = "off_grid"


@dataclass(frozen=True)
class Problem:
    """One reason a proposed appointment breaks a rule; `busy` names the colliding item for COLLISION."""

    kind: ProblemKind
    busy: Busy | None = None


def check_appointment(
    practice: Practice,
    *,
    specialist_id: str,
    service_id: str,
    location_id: str,
    start: datetime,
    busy: Sequence[Busy],
    now: datetime,
    channel: Channel | None = None,
    ignore_uid: str | None = None,
    rules: Rules = CLIENT_RULES,
) -> list[Problem]:
    """Every problem with booking `service_id` at `start` (aware); [] means the slot engine would offer it.

    PAST implies the lead time too and is reported alone; the busy list is the specialist's own.
    Only windows open to `rules.audience` count as schedule.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start must be an aware datetime (UTC), got {start!r}")
    spec = practice.specialist_by_id[specialist_id]
    service = practice.service_by_id[service_id]
    zone = practice.zone(location_id)
    start = start.astimezone(UTC)
    end = start + timedelta(minutes=service.duration)
    problems: list[Problem] = []

    if service_id not in spec.services:
        problems.append(Problem(ProblemKind.SERVICE_NOT_OFFERED))

    earliest, horizon_end = booking_window(practice, specialist_id, now, location_id, rules.min_notice_hours)
    if start < now:
        problems.append(Problem(ProblemKind.PAST))
    elif start < earliest:
        problems.append(Problem(ProblemKind.LEAD_TIME))
    if start >= horizon_end:
        problems.append(Problem(ProblemKind.BEYOND_HORIZON))

    if not on_grid(start.astimezone(zone), service):
        problems.append(Problem(ProblemKind.OFF_GRID))

    # Other locations may be in other zones: two days either side holds every window touching the span.
    day = start.astimezone(zone).date()
    spans = open_spans(practice, spec, day - timedelta(days=2), day + timedelta(days=2), rules.audience)
    here = merge([(s.start, s.end) for s in spans if s.location_id == location_id])
    anywhere = merge([(s.start, s.end) for s in spans])
    in_schedule = covers(here, [s for s, _ in here], start, end)
    if not in_schedule:
        if covers(anywhere, [s for s, _ in anywhere], start, end):
            problems.append(Problem(ProblemKind.OUTSIDE_LOCATION_SCHEDULE))
        else:
            problems.append(Problem(ProblemKind.OUTSIDE_ANY_SCHEDULE))

    allowed = service_channels(practice, service, location_id)
    wanted = [c for c in allowed if channel in (None, c)]
    if not wanted or (in_schedule and not coverage(spans, location_id, wanted).channels_for(start, end)):
        problems.append(Problem(ProblemKind.CHANNEL_NOT_ALLOWED))

    blocked_until = start + timedelta(minutes=service.duration + service.buffer_after)
    collisions = sorted(
        (b for b in busy if (ignore_uid is None or b.uid != ignore_uid) and b.overlaps(start, blocked_until)),
        key=lambda b: (b.start, b.end),
    )
    problems.extend(Problem(ProblemKind.COLLISION, b) for b in collisions)
    return problems
