"""The slot engine: schedules, exceptions, grid, buffers, lead time, horizon, channels and DST."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduling.config import Practice, parse_practice
from scheduling.conflicts import check_appointment
from scheduling.model import Busy, Channel, Slot
from scheduling.slots import booking_window, days_with_slots, free_slots

WARSAW = ZoneInfo("Europe/Warsaw")
ALL = (Channel.ON_SITE, Channel.VIDEO, Channel.PHONE)


def local(y: int, m: int, d: int, hh: int, mm: int = 0, fold: int = 0) -> datetime:
    """A Warsaw wall-clock time as aware UTC."""
    return datetime(y, m, d, hh, mm, tzinfo=WARSAW, fold=fold).astimezone(UTC)


def small(
    schedule: list[dict[str, Any]],
    *,
    exceptions: Sequence[dict[str, Any]] = (),
    service: dict[str, Any] | None = None,
    notice: float = 0,
    horizon: int = 400,
) -> Practice:
    """One specialist 'ola' offering service 'svc' (50 min on a 30-min grid unless overridden)."""
    svc = {"id": "svc", "name": "Session", "duration": 50, "start_every": 30, "channels": list(ALL)}
    svc.update(service or {})
    return parse_practice(
        {
            "practice": {"name": "Test practice", "timezone": "Europe/Warsaw"},
            "locations": [
                {"id": "office", "name": "Office"},
                {"id": "web", "name": "Online", "kind": "online"},
            ],
            "services": [svc],
            "specialists": [
                {
                    "id": "ola",
                    "name": "Specialist",
                    "services": ["svc"],
                    "schedule": schedule,
                    "exceptions": list(exceptions),
                    "min_notice_hours": notice,
                    "horizon_days": horizon,
                }
            ],
        }
    )


def window(weekday: str, start: str, end: str, location: str = "office", **extra: Any) -> dict[str, Any]:
    return {"weekday": weekday, "start": start, "end": end, "location": location, **extra}


def slots(
    practice: Practice,
    first: date,
    last: date | None = None,
    *,
    now: datetime,
    busy: Sequence[Busy] = (),
    service: str = "svc",
    location: str = "office",
    specialists: Sequence[str] = ("ola",),
    channel: Channel | None = None,
) -> list[Slot]:
    return free_slots(
        practice,
        service_id=service,
        location_id=location,
        specialist_ids=specialists,
        first_day=first,
        last_day=last or first,
        busy={s: busy for s in specialists},
        now=now,
        channel=channel,
    )


def wall(result: Sequence[Slot]) -> list[str]:
    return [s.start.astimezone(WARSAW).strftime("%H:%M") for s in result]


EARLY = datetime(2026, 3, 1, tzinfo=UTC)
MON = date(2026, 3, 23)


def test_example_monday_centre(practice: Practice) -> None:
    result = slots(practice, MON, now=EARLY, service="first", location="centre", specialists=["anna"])
    # 09:00-13:00 with 50 minutes: 12:00 is the last start that fits, 12:30 would end at 13:20.
    assert wall(result) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00"]
    first = result[0]
    assert first == Slot(local(2026, 3, 23, 9), local(2026, 3, 23, 9, 50), "anna", "centre", ALL)


def test_full_hours_only(practice: Practice) -> None:
    result = slots(practice, MON, now=EARLY, service="therapy", location="centre", specialists=["anna"])
    assert wall(result) == ["09:00", "10:00", "11:00", "12:00"]


def test_full_hours_only_on_half_hour_grid() -> None:
    p = small([window("mon", "09:30", "12:00")], service={"duration": 30, "full_hours_only": True})
    assert wall(slots(p, MON, now=EARLY)) == ["10:00", "11:00"]


def test_grid_is_aligned_to_local_clock_not_window_start() -> None:
    p = small([window("mon", "09:10", "11:00")], service={"duration": 30})
    assert wall(slots(p, MON, now=EARLY)) == ["09:30", "10:00", "10:30"]


def test_dst_spring_offsets(practice: Practice) -> None:
    kwargs: dict[str, Any] = {"now": EARLY, "service": "first", "location": "centre", "specialists": ["anna"]}
    before = slots(practice, date(2026, 3, 23), **kwargs)[0]
    after = slots(practice, date(2026, 3, 30), **kwargs)[0]
    assert before.start == datetime(2026, 3, 23, 8, tzinfo=UTC)  # 09:00 CET = UTC+1
    assert after.start == datetime(2026, 3, 30, 7, tzinfo=UTC)  # 09:00 CEST = UTC+2
    assert wall([before]) == wall([after]) == ["09:00"]


def test_dst_autumn_offsets(practice: Practice) -> None:
    kwargs: dict[str, Any] = {
        "now": datetime(2026, 10, 1, tzinfo=UTC),
        "service": "first",
        "location": "centre",
        "specialists": ["anna"],
    }
    before = slots(practice, date(2026, 10, 19), **kwargs, busy=())
    after = slots(practice, date(2026, 10, 26), **kwargs)
    assert before[0].start == datetime(2026, 10, 19, 7, tzinfo=UTC)
    assert after[0].start == datetime(2026, 10, 26, 8, tzinfo=UTC)
    assert wall(before) == wall(after)


def test_dst_spring_night_skips_missing_hour() -> None:
    p = small([window("sun", "01:00", "05:00")], service={"duration": 30})
    result = slots(p, date(2026, 3, 29), now=EARLY)
    # 02:00-03:00 does not exist that night; the window is 3 real hours long.
    assert wall(result) == ["01:00", "01:30", "03:00", "03:30", "04:00", "04:30"]
    starts = [s.start for s in result]
    assert starts == sorted(set(starts))
    assert result[2].start - result[1].start == timedelta(minutes=30)


def test_dst_autumn_night_offers_each_instant_once() -> None:
    p = small([window("sun", "01:00", "04:00")], service={"duration": 30})
    result = slots(p, date(2026, 10, 25), now=EARLY)
    # 01:00 CEST (23:00 UTC) to 04:00 CET (03:00 UTC) is four real hours: eight distinct starts.
    starts = [s.start for s in result]
    assert starts == [datetime(2026, 10, 24, 23, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(8)]
    assert wall(result) == ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00", "03:30"]


def test_window_edge_in_dst_gap_does_not_crash() -> None:
    p = small([window("sun", "02:30", "04:00")], service={"duration": 30})
    result = slots(p, date(2026, 3, 29), now=EARLY)
    # 02:30 does not exist; it resolves forward to 03:30, like any clock that skips the gap.
    assert wall(result) == ["03:30"]


def test_adjacent_windows_merge() -> None:
    p = small([window("mon", "09:00", "12:00"), window("mon", "12:00", "14:00")])
    assert "11:30" in wall(slots(p, MON, now=EARLY))
    assert wall(slots(p, MON, now=EARLY))[-1] == "13:00"


def test_windows_merge_per_channel() -> None:
    p = small([window("mon", "09:00", "12:00"), window("mon", "12:00", "14:00", channels=["video"])])
    by_time = {wall([s])[0]: s.channels for s in slots(p, MON, now=EARLY)}
    assert by_time["11:00"] == ALL
    assert by_time["11:30"] == (Channel.VIDEO,)
    assert by_time["13:00"] == (Channel.VIDEO,)
    only_phone = slots(p, MON, now=EARLY, channel=Channel.PHONE)
    assert wall(only_phone)[-1] == "11:00"
    assert all(s.channels == (Channel.PHONE,) for s in only_phone)


def test_window_to_midnight_joins_next_day() -> None:
    p = small([window("mon", "22:00", "24:00"), window("tue", "00:00", "02:00")])
    result = slots(p, MON, now=EARLY)
    assert wall(result) == ["22:00", "22:30", "23:00", "23:30"]
    assert result[-1].end == local(2026, 3, 24, 0, 20)


def test_buffer_after_must_be_free_but_may_leave_window() -> None:
    p = small([window("mon", "09:00", "13:00")], service={"buffer_after": 10})
    busy = [
        Busy(local(2026, 3, 23, 10), local(2026, 3, 23, 11)),
        Busy(local(2026, 3, 23, 12, 55), local(2026, 3, 23, 14)),
    ]
    # 09:00-09:50 + 10 min buffer ends exactly at the busy start; 12:00 needs 12:50-13:00 free.
    assert wall(slots(p, MON, now=EARLY, busy=busy)) == ["09:00", "11:00", "11:30"]
    assert wall(slots(p, MON, now=EARLY))[-1] == "12:00"


def test_busy_in_any_order_and_overlapping() -> None:
    p = small([window("mon", "09:00", "13:00")], service={"duration": 30})
    busy = [
        Busy(local(2026, 3, 23, 11), local(2026, 3, 23, 11, 40)),
        Busy(local(2026, 3, 23, 9), local(2026, 3, 23, 12)),
        Busy(local(2026, 3, 23, 9, 15), local(2026, 3, 23, 9, 20)),
    ]
    assert wall(slots(p, MON, now=EARLY, busy=busy)) == ["12:00", "12:30"]


def test_lead_time() -> None:
    p = small([window("mon", "09:00", "13:00")], notice=2)
    now = local(2026, 3, 23, 8, 10)
    assert wall(slots(p, MON, now=now)) == ["10:30", "11:00", "11:30", "12:00"]
    assert booking_window(p, "ola", now)[0] == local(2026, 3, 23, 10, 10)


def test_never_in_the_past() -> None:
    p = small([window(d, "09:00", "13:00") for d in ("sun", "mon")])
    now = local(2026, 3, 23, 10, 5)
    result = slots(p, date(2026, 3, 22), MON, now=now)
    assert wall(result) == ["10:30", "11:00", "11:30", "12:00"]
    assert all(s.start >= now for s in result)


def test_horizon() -> None:
    p = small([window(d, "09:00", "10:00") for d in ("mon", "tue", "wed", "thu")], horizon=2)
    now = local(2026, 3, 23, 6)
    result = slots(p, MON, date(2026, 3, 27), now=now)
    assert sorted({s.start.astimezone(WARSAW).date() for s in result}) == [
        date(2026, 3, 23),
        date(2026, 3, 24),
        date(2026, 3, 25),
    ]
    assert booking_window(p, "ola", now)[1] == local(2026, 3, 26, 0)


def test_whole_day_off() -> None:
    p = small([window("mon", "09:00", "13:00")], exceptions=[{"date": "2026-03-23", "kind": "off"}])
    assert slots(p, MON, now=EARLY) == []
    assert len(slots(p, date(2026, 3, 30), now=EARLY)) == 7


def test_partial_day_off() -> None:
    off = {"date": "2026-03-23", "kind": "off", "start": "10:00", "end": "11:00"}
    p = small([window("mon", "09:00", "13:00")], exceptions=[off])
    assert wall(slots(p, MON, now=EARLY)) == ["09:00", "11:00", "11:30", "12:00"]


def test_off_at_one_location_only() -> None:
    off = {"date": "2026-03-23", "kind": "off", "location": "web"}
    p = small([window("mon", "09:00", "11:00"), window("mon", "14:00", "16:00", "web")], exceptions=[off])
    assert wall(slots(p, MON, now=EARLY)) == ["09:00", "09:30", "10:00"]
    assert slots(p, MON, now=EARLY, location="web") == []


def test_extra_hours_at_another_location() -> None:
    extra = {"date": "2026-03-24", "kind": "extra", "start": "15:00", "end": "17:00", "location": "web"}
    p = small([window("mon", "09:00", "13:00")], exceptions=[extra])
    tue = date(2026, 3, 24)
    assert slots(p, tue, now=EARLY) == []
    online = slots(p, tue, now=EARLY, location="web")
    assert wall(online) == ["15:00", "15:30", "16:00"]
    assert all(s.location_id == "web" and s.channels == (Channel.VIDEO, Channel.PHONE) for s in online)


def test_example_extra_hours_extend_window(practice: Practice) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    kwargs: dict[str, Any] = {"service": "first", "location": "centre", "specialists": ["anna"]}
    # Monday 09:00-13:00 plus extra 10:00-14:00 that day: one stretch to 14:00.
    assert wall(slots(practice, date(2026, 12, 28), now=now, **kwargs))[-1] == "13:00"
    assert wall(slots(practice, date(2026, 12, 21), now=now, **kwargs))[-1] == "12:00"


def test_channels_of_window_and_service(practice: Practice) -> None:
    fri = date(2026, 3, 27)
    kwargs: dict[str, Any] = {"now": EARLY, "service": "first", "location": "centre", "specialists": ["anna"]}
    assert {s.channels for s in slots(practice, fri, **kwargs)} == {(Channel.ON_SITE,)}
    assert slots(practice, fri, channel=Channel.VIDEO, **kwargs) == []
    chat = slots(practice, date(2026, 3, 26), now=EARLY, service="chat", location="online", specialists=["jonas"])
    assert {s.channels for s in chat} == {(Channel.CHAT, Channel.PHONE)}


def test_no_on_site_visit_at_online_location(practice: Practice) -> None:
    sat = date(2026, 3, 28)
    result = slots(practice, sat, now=EARLY, service="first", location="online", specialists=["jonas"])
    assert result and {s.channels for s in result} == {(Channel.VIDEO, Channel.PHONE)}
    assert (
        slots(
            practice,
            sat,
            now=EARLY,
            service="first",
            location="online",
            specialists=["jonas"],
            channel=Channel.ON_SITE,
        )
        == []
    )


def test_specialist_without_the_service(practice: Practice) -> None:
    assert slots(practice, MON, now=EARLY, service="therapy", location="centre", specialists=["jonas"]) == []


def test_sorted_by_start_then_given_specialist_order() -> None:
    data = {
        "practice": {"name": "Two", "timezone": "Europe/Warsaw"},
        "locations": [{"id": "office", "name": "Office"}],
        "services": [{"id": "svc", "name": "S", "duration": 30, "channels": ["on_site"]}],
        "specialists": [
            {
                "id": sid,
                "name": sid,
                "services": ["svc"],
                "min_notice_hours": 0,
                "schedule": [window("mon", start, "11:00")],
            }
            for sid, start in (("zed", "09:00"), ("amy", "10:00"))
        ],
    }
    p = parse_practice(data)
    result = slots(p, MON, now=EARLY, specialists=["zed", "amy", "zed"])
    assert [(wall([s])[0], s.specialist_id) for s in result] == [
        ("09:00", "zed"),
        ("09:30", "zed"),
        ("10:00", "zed"),
        ("10:00", "amy"),
        ("10:30", "zed"),
        ("10:30", "amy"),
    ]
    swapped = slots(p, MON, now=EARLY, specialists=["amy", "zed"])
    assert [s.specialist_id for s in swapped if wall([s])[0] == "10:00"] == ["amy", "zed"]


def test_naive_now_is_refused() -> None:
    p = small([window("mon", "09:00", "13:00")])
    with pytest.raises(ValueError, match="aware"):
        slots(p, MON, now=datetime(2026, 3, 1))


def random_busy(
    rng: random.Random, first: date, days: int, count: int, lengths: Sequence[int] = (15, 30, 50, 60, 120)
) -> list[Busy]:
    base = datetime.combine(first, time(0), WARSAW).astimezone(UTC)
    out = []
    for i in range(count):
        start = base + timedelta(minutes=5 * rng.randrange(days * 24 * 12))
        out.append(Busy(start, start + timedelta(minutes=rng.choice(lengths)), f"item {i}", f"uid-{i}"))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_slot_passes_the_conflict_check(practice: Practice, seed: int) -> None:
    rng = random.Random(seed)
    first, last = date(2026, 3, 1), date(2026, 3, 31)
    now = local(2026, 3, 2, 7, 13)
    checked = 0
    for location in ("centre", "online"):
        for service in practice.services:
            ids = [s.id for s in practice.specialists_for(service.id, location)]
            busy = {sid: random_busy(rng, first, 31, 60) for sid in ids}
            kwargs: dict[str, Any] = {
                "service_id": service.id,
                "location_id": location,
                "specialist_ids": ids,
                "first_day": first,
                "last_day": last,
                "busy": busy,
                "now": now,
            }
            result = free_slots(practice, **kwargs)
            assert result == sorted(result, key=lambda s: (s.start, ids.index(s.specialist_id)))
            assert len({(s.start, s.specialist_id) for s in result}) == len(result)
            by_day = {s.start.astimezone(WARSAW).date() for s in result}
            assert days_with_slots(practice, **kwargs) == by_day
            for slot in result:
                assert slot.channels
                assert slot.end - slot.start == timedelta(minutes=service.duration)
                for channel in (None, *slot.channels):
                    problems = check_appointment(
                        practice,
                        specialist_id=slot.specialist_id,
                        service_id=service.id,
                        location_id=location,
                        start=slot.start,
                        busy=busy[slot.specialist_id],
                        now=now,
                        channel=channel,
                    )
                    assert problems == [], (slot, channel, problems)
                    checked += 1
    assert checked > 200


def test_days_with_slots(practice: Practice) -> None:
    kwargs: dict[str, Any] = {
        "service_id": "chat",
        "location_id": "online",
        "specialist_ids": ["jonas"],
        "first_day": date(2026, 3, 23),
        "last_day": date(2026, 3, 29),
        "now": EARLY,
    }
    assert days_with_slots(practice, busy={}, **kwargs) == {date(2026, 3, 26), date(2026, 3, 28)}
    thursday_full = [Busy(local(2026, 3, 26, 7), local(2026, 3, 26, 13))]
    assert days_with_slots(practice, busy={"jonas": thursday_full}, **kwargs) == {date(2026, 3, 28)}


def test_a_month_with_2000_busy_items_offers_only_free_starts() -> None:
    """Speed is measured by benchmarks/bench_slots.py; here the crowded month must stay correct."""
    p = small([window(d, "08:00", "20:00") for d in ("mon", "tue", "wed", "thu", "fri")])
    busy = random_busy(random.Random(7), date(2026, 3, 1), 30, 2000, lengths=(5, 10))
    kwargs: dict[str, Any] = {
        "service_id": "svc",
        "location_id": "office",
        "specialist_ids": ["ola"],
        "first_day": date(2026, 3, 1),
        "last_day": date(2026, 3, 30),
        "busy": {"ola": busy},
        "now": EARLY,
    }
    result = free_slots(p, **kwargs)
    assert result
    assert not [s for s in result for b in busy if b.overlaps(s.start, s.end)]


@pytest.mark.parametrize("first", [date(2026, 3, 26), date(2026, 10, 22)])
def test_slots_are_exactly_the_starts_the_conflict_check_accepts(first: date) -> None:
    """Over a week with a clock change and random busy time, nothing accepted is missing and nothing else offered."""
    p = small(
        [window(d, "08:00", "20:00") for d in ("mon", "tue", "wed", "thu", "fri")]
        + [window("sat", "22:00", "24:00"), window("sun", "00:00", "06:00"), window("sun", "12:00", "14:00")],
        service={"duration": 45, "buffer_after": 10, "start_every": 15},
    )
    rng = random.Random(first.toordinal())
    busy = random_busy(rng, first, 7, 150, lengths=(0, 5, 10, 15, 30, 60, 240))
    # Off the 5-minute marks, down to the microsecond.
    busy += [Busy(b.start + timedelta(seconds=7, microseconds=1), b.end + timedelta(seconds=3)) for b in busy[:20]]
    rng.shuffle(busy)
    last = first + timedelta(days=6)
    now = datetime.combine(first, time(0), UTC) - timedelta(days=1)
    expected = []
    at = datetime.combine(first, time(0), WARSAW).astimezone(UTC)
    while at < datetime.combine(last + timedelta(days=1), time(0), WARSAW).astimezone(UTC):
        problems = check_appointment(
            p, specialist_id="ola", service_id="svc", location_id="office", start=at, busy=busy, now=now
        )
        if not problems:
            expected.append(at)
        at += timedelta(minutes=15)
    kwargs: dict[str, Any] = {
        "service_id": "svc",
        "location_id": "office",
        "specialist_ids": ["ola"],
        "first_day": first,
        "last_day": last,
        "busy": {"ola": busy},
        "now": now,
    }
    assert len(expected) > 20
    assert [s.start for s in free_slots(p, **kwargs)] == expected
    assert days_with_slots(p, **kwargs) == {s.astimezone(WARSAW).date() for s in expected}
