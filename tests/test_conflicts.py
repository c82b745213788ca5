"""Rule checks for one proposed appointment: each problem kind, and several at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduling.config import Practice, parse_practice
from scheduling.conflicts import Problem, ProblemKind, check_appointment
from scheduling.model import Busy, Channel

WARSAW = ZoneInfo("Europe/Warsaw")
NOW = datetime(2026, 3, 20, 8, tzinfo=UTC)


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=WARSAW).astimezone(UTC)


def check(practice: Practice, start: datetime, **overrides: Any) -> list[Problem]:
    kwargs: dict[str, Any] = {
        "specialist_id": "anna",
        "service_id": "first",
        "location_id": "centre",
        "busy": [],
        "now": NOW,
    }
    kwargs.update(overrides)
    return check_appointment(practice, start=start, **kwargs)


def kinds(problems: list[Problem]) -> list[ProblemKind]:
    return [p.kind for p in problems]


# Monday 2026-03-23: Anna works 09:00-13:00 at the centre and 14:00-18:00 online (video only).
MON_10 = local(2026, 3, 23, 10)


def test_valid_appointment(practice: Practice) -> None:
    assert check(practice, MON_10) == []
    assert check(practice, local(2026, 3, 23, 12), channel=Channel.PHONE) == []


def test_valid_after_dst_change(practice: Practice) -> None:
    assert check(practice, local(2026, 3, 30, 9)) == []
    assert check(practice, datetime(2026, 3, 30, 8, tzinfo=UTC)) == []  # 10:00 CEST
    assert kinds(check(practice, datetime(2026, 3, 30, 6, tzinfo=UTC))) == [ProblemKind.OUTSIDE_ANY_SCHEDULE]


def test_past_is_reported_without_lead_time(practice: Practice) -> None:
    now = local(2026, 3, 23, 11, 5)
    assert kinds(check(practice, MON_10, now=now)) == [ProblemKind.PAST]


def test_lead_time(practice: Practice) -> None:
    now = local(2026, 3, 22, 23)  # Anna needs 12 hours' notice; 10:00 is 11 hours away
    assert kinds(check(practice, MON_10, now=now)) == [ProblemKind.LEAD_TIME]
    assert check(practice, local(2026, 3, 23, 11), now=now) == []


def test_beyond_horizon(practice: Practice) -> None:
    # 60 days from Friday 2026-03-20 is Tuesday 2026-05-19; the next Monday and Wednesday are beyond.
    assert check(practice, local(2026, 5, 18, 10)) == []
    assert kinds(check(practice, local(2026, 5, 20, 10))) == [ProblemKind.BEYOND_HORIZON]


def test_outside_location_schedule(practice: Practice) -> None:
    problems = check(practice, local(2026, 3, 23, 15))
    assert kinds(problems) == [ProblemKind.OUTSIDE_LOCATION_SCHEDULE]
    assert check(practice, local(2026, 3, 23, 15), location_id="online") == []


def test_outside_any_schedule(practice: Practice) -> None:
    assert kinds(check(practice, local(2026, 3, 24, 10))) == [ProblemKind.OUTSIDE_ANY_SCHEDULE]
    # Runs past the window end at 13:00 into time with no window at all.
    assert kinds(check(practice, local(2026, 3, 23, 12, 30))) == [ProblemKind.OUTSIDE_ANY_SCHEDULE]


def variant(practice: Practice, **anna: Any) -> Practice:
    """The example practice with some of Anna's fields replaced."""
    data = practice.model_dump()
    data["specialists"][0].update(anna)
    return parse_practice(data)


def test_exceptions(practice: Practice) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert check(practice, local(2026, 12, 28, 13), now=now) == []  # extra hours 10:00-14:00
    assert kinds(check(practice, local(2026, 12, 21, 13), now=now)) == [ProblemKind.OUTSIDE_ANY_SCHEDULE]
    off = variant(
        practice,
        exceptions=[
            {"date": "2026-03-23", "kind": "off", "start": "09:00", "end": "10:30"},
            {"date": "2026-03-25", "kind": "off"},
        ],
    )
    assert kinds(check(off, MON_10)) == [ProblemKind.OUTSIDE_ANY_SCHEDULE]
    assert check(off, local(2026, 3, 23, 11)) == []
    assert kinds(check(off, local(2026, 3, 25, 11))) == [ProblemKind.OUTSIDE_ANY_SCHEDULE]


def test_no_service_channel_in_window(practice: Practice) -> None:
    phone_fridays = variant(
        practice,
        schedule=[{"weekday": "fri", "start": "09:00", "end": "17:00", "location": "centre", "channels": ["phone"]}],
    )
    assert kinds(check(phone_fridays, local(2026, 3, 27, 10), service_id="couples")) == [
        ProblemKind.CHANNEL_NOT_ALLOWED
    ]
    assert check(phone_fridays, local(2026, 3, 27, 10)) == []


def test_collision_names_each_busy_item(practice: Practice) -> None:
    a = Busy(local(2026, 3, 23, 9, 30), local(2026, 3, 23, 10, 15), "dentist", "uid-a")
    b = Busy(local(2026, 3, 23, 10, 45), local(2026, 3, 23, 11), "request", "uid-b")
    clear = Busy(local(2026, 3, 23, 11), local(2026, 3, 23, 12), "later", "uid-c")
    problems = check(practice, MON_10, busy=[clear, b, a])
    assert problems == [Problem(ProblemKind.COLLISION, a), Problem(ProblemKind.COLLISION, b)]


def test_buffer_after_collides(practice: Practice) -> None:
    # 10:00-10:50 plus 10 minutes' buffer: busy from 10:55 collides, from 11:00 does not.
    near = Busy(local(2026, 3, 23, 10, 55), local(2026, 3, 23, 12))
    assert kinds(check(practice, MON_10, busy=[near])) == [ProblemKind.COLLISION]
    later = Busy(local(2026, 3, 23, 11), local(2026, 3, 23, 12))
    assert check(practice, MON_10, busy=[later]) == []


def test_ignore_uid_when_rescheduling(practice: Practice) -> None:
    own = Busy(local(2026, 3, 23, 9, 30), local(2026, 3, 23, 10, 30), "this appointment", "uid-own")
    other = Busy(local(2026, 3, 23, 10, 30), local(2026, 3, 23, 11), "other", None)
    problems = check(practice, MON_10, busy=[own, other], ignore_uid="uid-own")
    assert problems == [Problem(ProblemKind.COLLISION, other)]
    assert len(check(practice, MON_10, busy=[own, other])) == 2


@pytest.mark.parametrize(
    ("start", "overrides"),
    [
        (MON_10, {"channel": Channel.CHAT}),  # the service has no chat
        (local(2026, 3, 27, 14), {"channel": Channel.VIDEO}),  # Friday's window is on-site only
        (local(2026, 3, 23, 15), {"location_id": "online", "channel": Channel.PHONE}),  # video-only window
        (
            local(2026, 3, 28, 10),
            {"specialist_id": "jonas", "location_id": "online", "channel": Channel.ON_SITE},
        ),
    ],
)
def test_channel_not_allowed(practice: Practice, start: datetime, overrides: dict[str, Any]) -> None:
    assert ProblemKind.CHANNEL_NOT_ALLOWED in kinds(check(practice, start, **overrides))


def test_channel_allowed_counterparts(practice: Practice) -> None:
    assert check(practice, local(2026, 3, 27, 14), channel=Channel.ON_SITE) == []
    assert check(practice, local(2026, 3, 23, 15), location_id="online", channel=Channel.VIDEO) == []
    online_sat = {"specialist_id": "jonas", "location_id": "online", "channel": Channel.VIDEO}
    assert check(practice, local(2026, 3, 28, 10), **online_sat) == []


def test_service_not_offered(practice: Practice) -> None:
    assert kinds(check(practice, MON_10, service_id="chat", channel=Channel.PHONE)) == [ProblemKind.SERVICE_NOT_OFFERED]


@pytest.mark.parametrize(
    ("start", "service_id"),
    [
        (local(2026, 3, 23, 10, 15), "first"),
        (local(2026, 3, 23, 10, 30), "therapy"),  # full hours only
        (MON_10.replace(second=30), "first"),
    ],
)
def test_off_grid(practice: Practice, start: datetime, service_id: str) -> None:
    assert kinds(check(practice, start, service_id=service_id)) == [ProblemKind.OFF_GRID]


def test_many_problems_at_once(practice: Practice) -> None:
    busy = [
        Busy(local(2026, 3, 24, 9), local(2026, 3, 24, 10, 30), "one", "u1"),
        Busy(local(2026, 3, 24, 10, 40), local(2026, 3, 24, 11), "two", "u2"),
    ]
    now = local(2026, 3, 25, 8)
    # Anna on Tuesday 10:15: past, a service she lacks, off grid, no schedule, two collisions.
    problems = check(practice, local(2026, 3, 24, 10, 15), service_id="chat", busy=busy, now=now)
    assert kinds(problems) == [
        ProblemKind.SERVICE_NOT_OFFERED,
        ProblemKind.PAST,
        ProblemKind.OFF_GRID,
        ProblemKind.OUTSIDE_ANY_SCHEDULE,
        ProblemKind.COLLISION,
        ProblemKind.COLLISION,
    ]
    assert [p.busy.uid for p in problems if p.busy] == ["u1", "u2"]


def test_naive_start_is_refused(practice: Practice) -> None:
    with pytest.raises(ValueError, match="aware"):
        check(practice, datetime(2026, 3, 23, 10))
