"""Recurring visits against real Radicale and Xandikos: booking with per-date conflicts, moves and cancellations
by scope, edits made in a calendar app, reminders. Every test ends by reading the calendar fresh and expanding it
with recurring-ical-events: the occurrences must equal the appointment rows, at the expected local times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from scheduling.booking import CancellationClosed, NotAllowed
from scheduling.calendar_sync import MISSING_CONFIRM
from scheduling.db import AppointmentRow, SeriesRow
from scheduling.model import Status
from scheduling.recurrence import Scope
from scheduling.series import SeriesConflicts
from tests.fixtures.caldav import delete_raw, get_raw, put_raw
from tests.fixtures.series import (
    WEEK,
    Bench,
    assert_calendar_matches,
    at,
    calendar_objects,
    local_times,
)

# Mondays 18:00 in Warsaw: ten weeks from these dates cross a DST change (29 March and 25 October 2026).
SEASONS = {"spring": ("2026-03-16", "2026-03-02"), "autumn": ("2026-10-12", "2026-09-28")}
STAFF = 500


def foreign_event(uid: str, start: datetime, minutes: int = 60) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    end = start + timedelta(minutes=minutes)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start.strftime(stamp)}\r\n"
        f"DTEND:{end.strftime(stamp)}\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def book(bench: Bench, season: str, count: int = 10, **kw: object) -> tuple[SeriesRow, list[AppointmentRow]]:
    first, today = SEASONS[season]
    bench.clock.now = at(today, "09:00")
    client = await bench.client()
    return await bench.series.create(
        bench.request(client, at(first, "18:00"), count=count, **kw), actor="specialist:500", confirmed=True
    )


async def counts(bench: Bench) -> tuple[int, int]:
    async with bench.store.tx() as tx:
        series = await tx.session.scalar(select(func.count()).select_from(SeriesRow))
        appts = await tx.session.scalar(select(func.count()).select_from(AppointmentRow))
    return int(series or 0), int(appts or 0)


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_weekly_ten_with_a_colliding_date_skipped(bench: Bench, season: str) -> None:
    first, today = SEASONS[season]
    bench.clock.now = at(today, "09:00")
    clash = at((datetime.fromisoformat(first) + 2 * WEEK).date().isoformat(), "18:30")
    put_raw(bench.server, "dentist.ics", foreign_event("dentist", clash))
    client = await bench.client()
    req = bench.request(client, at(first, "18:00"))

    with pytest.raises(SeriesConflicts) as refused:
        await bench.series.create(req, actor="specialist:500", confirmed=True)
    assert refused.value.total == 10
    [conflict] = refused.value.conflicts
    assert conflict.start == at((datetime.fromisoformat(first) + 2 * WEEK).date().isoformat(), "18:00")
    assert [p.busy.label for p in conflict.problems if p.busy] == ["Dentist"]
    assert await counts(bench) == (0, 0)  # nothing saved half-way

    series, rows = await bench.series.create(req, actor="specialist:500", confirmed=True, skip=[conflict.start])
    assert len(rows) == 9 and all(r.status == Status.CONFIRMED for r in rows)
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 9
    ours = [o for o in seen if o[0] == series.uid]
    assert local_times(ours) == {"18:00"}  # before and after the clock change
    text = calendar_objects(bench.server)[f"{series.uid}.ics"]
    master = next(c for c in Calendar.from_ical(text).walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert master["DTSTART"].params["TZID"] == "Europe/Warsaw"
    assert "COUNT=10" in master["RRULE"].to_ical().decode()
    assert [d.dt for d in master["EXDATE"].dts] == [conflict.start.astimezone(master.decoded("DTSTART").tzinfo)]
    assert "BEGIN:VTIMEZONE" in text


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_move_this_only_is_an_override(bench: Bench, season: str) -> None:
    series, rows = await book(bench, season, count=6)
    fourth = rows[3]
    tuesday = fourth.start + timedelta(days=1, hours=-6)  # Tuesday 12:00
    change = await bench.series.move(fourth.id, Scope.THIS, tuesday, telegram_id=STAFF)
    assert [(v.appointment.id, v.old_start, v.removed) for v in change.visits] == [(fourth.id, rows[3].start, False)]
    seen = await assert_calendar_matches(bench)
    assert len(calendar_objects(bench.server)) == 1 and len(seen) == 6
    assert sorted(local_times(seen)) == ["12:00", "18:00"]
    text = calendar_objects(bench.server)[f"{series.uid}.ics"]
    assert text.count("RECURRENCE-ID") == 1


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_move_this_and_following_splits_and_keeps_earlier_moves(bench: Bench, season: str) -> None:
    _series, rows = await book(bench, season, count=8)
    # The seventh visit was moved on its own before: it keeps that move.
    seventh_moved = rows[6].start + timedelta(days=1, hours=-6)
    await bench.series.move(rows[6].id, Scope.THIS, seventh_moved, telegram_id=STAFF)
    fifth = rows[4]
    change = await bench.series.move(fifth.id, Scope.FOLLOWING, fifth.start - timedelta(hours=1), telegram_id=STAFF)
    assert len(change.series) == 2
    old, new = change.series
    assert new.uid != old.uid and new.parent_id == old.id
    assert {v.appointment.id for v in change.visits} == {rows[4].id, rows[5].id, rows[7].id}

    seen = await assert_calendar_matches(bench)
    objects = calendar_objects(bench.server)
    assert set(objects) == {f"{old.uid}.ics", f"{new.uid}.ics"}
    assert "UNTIL=" in objects[f"{old.uid}.ics"] and "COUNT=" not in objects[f"{old.uid}.ics"]
    by_uid = {uid: sorted(local_times([o for o in seen if o[0] == uid])) for uid in (old.uid, new.uid)}
    assert by_uid == {old.uid: ["18:00"], new.uid: ["12:00", "17:00"]}
    assert [o[0] for o in seen].count(old.uid) == 4 and [o[0] for o in seen].count(new.uid) == 4
    after = await bench.rows(new.id)
    assert next(r for r in after if r.id == rows[6].id).start == seventh_moved


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_move_all_leaves_past_visits_as_they_were(bench: Bench, season: str) -> None:
    series, rows = await book(bench, season, count=6)
    bench.clock.now = rows[1].end + timedelta(hours=1)  # two visits are history
    await bench.booking.mark(rows[0].id, STAFF, attended=True)
    change = await bench.series.move(rows[4].id, Scope.ALL, rows[4].start + timedelta(hours=1), telegram_id=STAFF)
    assert {v.appointment.id for v in change.visits} == {r.id for r in rows[2:]}
    seen = await assert_calendar_matches(bench)
    assert [o for o in seen if o[1] < bench.clock.now] == [
        (series.uid, rows[0].start, rows[0].end),
        (series.uid, rows[1].start, rows[1].end),
    ]
    assert local_times([o for o in seen if o[1] > bench.clock.now]) == {"19:00"}
    assert len(calendar_objects(bench.server)) == 2  # the history and the new rule


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_cancel_by_scope(bench: Bench, season: str) -> None:
    series, rows = await book(bench, season, count=8)
    change = await bench.series.cancel(rows[1].id, Scope.THIS, telegram_id=STAFF)
    assert [v.appointment.id for v in change.visits] == [rows[1].id]
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 7

    change = await bench.series.cancel(rows[5].id, Scope.FOLLOWING, telegram_id=STAFF)
    assert {v.appointment.id for v in change.visits} == {rows[5].id, rows[6].id, rows[7].id}
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 4
    assert "UNTIL=" in calendar_objects(bench.server)[f"{series.uid}.ics"]

    bench.clock.now = rows[0].end + timedelta(minutes=5)
    change = await bench.series.cancel(rows[3].id, Scope.ALL, telegram_id=STAFF)
    assert {v.appointment.id for v in change.visits} == {rows[2].id, rows[3].id, rows[4].id}
    seen = await assert_calendar_matches(bench)
    assert seen == [(series.uid, rows[0].start, rows[0].end)]  # the past visit stays: it is history
    assert local_times(seen) == {"18:00"}

    bench.clock.now = rows[0].start - timedelta(days=3)
    await bench.series.cancel(rows[0].id, Scope.THIS, telegram_id=STAFF)
    await assert_calendar_matches(bench)
    assert calendar_objects(bench.server) == {}  # nothing left: the resource is gone


async def test_client_cancels_one_visit_within_policy(bench: Bench) -> None:
    _series, rows = await book(bench, "spring", count=4)
    client = rows[0].client_id
    with pytest.raises(NotAllowed):
        await bench.series.cancel(rows[1].id, Scope.FOLLOWING, client_id=client)
    with pytest.raises(NotAllowed):
        await bench.series.cancel(rows[1].id, Scope.THIS, client_id=client + 1)
    bench.clock.now = rows[0].start - timedelta(hours=3)  # inside the 24 h limit for the first visit
    with pytest.raises(CancellationClosed):
        await bench.series.cancel(rows[0].id, Scope.THIS, client_id=client)
    change = await bench.series.cancel(rows[1].id, Scope.THIS, client_id=client)
    assert [v.appointment.id for v in change.visits] == [rows[1].id]
    assert len(await assert_calendar_matches(bench)) == 3


async def test_move_refuses_collisions_unless_skipped(bench: Bench) -> None:
    series, rows = await book(bench, "spring", count=4)
    clash = rows[2].start + timedelta(hours=-1)
    put_raw(bench.server, "dentist.ics", foreign_event("dentist", clash))
    with pytest.raises(SeriesConflicts) as refused:
        await bench.series.move(rows[1].id, Scope.FOLLOWING, rows[1].start - timedelta(hours=1), telegram_id=STAFF)
    assert [c.start for c in refused.value.conflicts] == [clash]
    assert [r.start for r in await bench.rows(series.id)] == [r.start for r in rows]  # nothing moved
    change = await bench.series.move(
        rows[1].id, Scope.FOLLOWING, rows[1].start - timedelta(hours=1), telegram_id=STAFF, skip=[clash]
    )
    assert [v.removed for v in sorted(change.visits, key=lambda v: v.old_start)] == [False, True, False]
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 3


# --- edits made by a second CalDAV client (a calendar app) ---------------------------------------------------------


def edit(bench: Bench, series: SeriesRow, change) -> None:  # type: ignore[no-untyped-def]
    """Change the series' resource as a calendar app would, and write it back."""
    r = get_raw(bench.server, f"{series.uid}.ics")
    cal = Calendar.from_ical(r.text)
    change(cal)
    put_raw(bench.server, f"{series.uid}.ics", cal.to_ical().decode())


def master_of(cal: Calendar):  # type: ignore[no-untyped-def]
    return next(c for c in cal.walk("VEVENT") if "RECURRENCE-ID" not in c)


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_calendar_app_moves_one_and_deletes_one(bench: Bench, season: str) -> None:
    from icalendar import Event

    series, rows = await book(bench, season, count=6)
    await bench.flush()
    zone = master_of(Calendar.from_ical(get_raw(bench.server, f"{series.uid}.ics").text)).decoded("DTSTART").tzinfo
    moved_to = rows[2].start + timedelta(hours=-2)

    def drag_and_delete(cal: Calendar) -> None:
        master = master_of(cal)
        override = Event()
        for name in ("UID", "SUMMARY", "DESCRIPTION", "LOCATION", "STATUS"):
            override.add(name, master[name])
        override.add("DTSTAMP", datetime.now(UTC))
        override.add("RECURRENCE-ID", rows[2].start.astimezone(zone))
        override.add("DTSTART", moved_to.astimezone(zone))
        override.add("DTEND", (moved_to + timedelta(minutes=50)).astimezone(zone))
        override.add("SEQUENCE", 5)
        cal.add_component(override)
        master.add("EXDATE", [rows[4].start.astimezone(zone)])

    assert (await bench.series.reconcile("ana")).changes == []  # read back since our write
    edit(bench, series, drag_and_delete)
    # One read without the deleted visit proves nothing: nothing of the edit is carried back yet.
    assert (await bench.series.reconcile("ana")).changes == []
    assert {r.status for r in await bench.rows(series.id)} == {Status.CONFIRMED}
    bench.clock.now += MISSING_CONFIRM
    [change] = (await bench.series.reconcile("ana")).changes
    assert change.by_calendar
    assert {(v.appointment.id, v.removed) for v in change.visits} == {(rows[2].id, False), (rows[4].id, True)}
    after = {r.id: r for r in await bench.rows(series.id)}
    assert after[rows[2].id].start == moved_to and after[rows[4].id].status == Status.CANCELLED
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 5 and sorted(local_times(seen)) == ["16:00", "18:00"]
    assert (await bench.series.reconcile("ana")).changes == []  # our rewrite is read back as unchanged


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_calendar_app_changes_the_series_time_then_ends_it(bench: Bench, season: str) -> None:
    series, rows = await book(bench, season, count=6)
    await bench.flush()

    def earlier(cal: Calendar) -> None:
        master = master_of(cal)
        start, end = master.decoded("DTSTART"), master.decoded("DTEND")
        for name in ("DTSTART", "DTEND"):
            master.pop(name)
        master.add("DTSTART", start - timedelta(hours=1))
        master.add("DTEND", end - timedelta(hours=1))

    await bench.series.reconcile("ana")
    edit(bench, series, earlier)
    [change] = (await bench.series.reconcile("ana")).changes  # a move counts at once, as for single events
    assert len(change.visits) == 6 and not any(v.removed for v in change.visits)
    seen = await assert_calendar_matches(bench)
    assert local_times(seen) == {"17:00"} and len(seen) == 6

    def end_after_three(cal: Calendar) -> None:
        master = master_of(cal)
        rule = master["RRULE"]
        rule.pop("COUNT", None)
        rule["UNTIL"] = [(rows[2].start - timedelta(hours=1)).astimezone(UTC)]

    await bench.series.reconcile("ana")  # our rewrite read back
    edit(bench, series, end_after_three)
    assert (await bench.series.reconcile("ana")).changes == []
    bench.clock.now += MISSING_CONFIRM
    [change] = (await bench.series.reconcile("ana")).changes
    assert {v.appointment.id for v in change.visits} == {r.id for r in rows[3:]}
    assert all(v.removed for v in change.visits)
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 3 and local_times(seen) == {"17:00"}
    assert "UNTIL=" in calendar_objects(bench.server)[f"{series.uid}.ics"]


async def test_a_series_the_server_lost_is_written_again(bench: Bench) -> None:
    series, _rows = await book(bench, "spring", count=3)
    await bench.flush()
    delete_raw(bench.server, f"{series.uid}.ics")  # gone before any read showed it: the server lost our write
    assert (await bench.series.reconcile("ana")).changes == []
    assert all(r.status == Status.CONFIRMED for r in await bench.rows(series.id))
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 3 and local_times(seen) == {"18:00"}


async def test_a_series_that_vanishes_once_is_kept_twice_minutes_apart_is_cancelled(bench: Bench) -> None:
    series, rows = await book(bench, "spring", count=4)
    await bench.flush()
    assert (await bench.series.reconcile("ana")).changes == []  # seen since our write
    delete_raw(bench.server, f"{series.uid}.ics")
    assert (await bench.series.reconcile("ana")).changes == []  # missing once: nothing cancelled
    assert {r.status for r in await bench.rows(series.id)} == {Status.CONFIRMED}
    # It comes back (a server hiccup, a sync that lagged): the missing read is forgotten.
    await bench.series.move(rows[3].id, Scope.THIS, rows[3].start + timedelta(hours=-1), telegram_id=STAFF)
    await bench.flush()
    assert (await bench.series.reconcile("ana")).changes == []
    bench.clock.now += MISSING_CONFIRM
    assert (await bench.series.reconcile("ana")).changes == []
    assert {r.status for r in await bench.rows(series.id)} == {Status.CONFIRMED}

    delete_raw(bench.server, f"{series.uid}.ics")
    assert (await bench.series.reconcile("ana")).changes == []
    bench.clock.now += MISSING_CONFIRM - timedelta(seconds=1)
    assert (await bench.series.reconcile("ana")).changes == []  # not minutes apart yet
    bench.clock.now += timedelta(seconds=1)
    [change] = (await bench.series.reconcile("ana")).changes
    assert change.by_calendar and all(v.removed for v in change.visits) and len(change.visits) == 4
    assert {r.status for r in await bench.rows(series.id)} == {Status.CANCELLED}
    assert await assert_calendar_matches(bench) == []
    assert calendar_objects(bench.server) == {}


async def test_an_occurrence_deleted_once_is_kept(bench: Bench) -> None:
    series, rows = await book(bench, "autumn", count=5)
    await bench.flush()
    await bench.series.reconcile("ana")
    zone = master_of(Calendar.from_ical(get_raw(bench.server, f"{series.uid}.ics").text)).decoded("DTSTART").tzinfo
    edit(bench, series, lambda cal: master_of(cal).add("EXDATE", [rows[1].start.astimezone(zone)]))
    assert (await bench.series.reconcile("ana")).changes == []
    # The specialist undoes it: the next read shows the visit again, and the missing read is forgotten.
    edit(bench, series, lambda cal: master_of(cal).pop("EXDATE"))
    assert (await bench.series.reconcile("ana")).changes == []
    bench.clock.now += MISSING_CONFIRM
    assert (await bench.series.reconcile("ana")).changes == []
    assert {r.status for r in await bench.rows(series.id)} == {Status.CONFIRMED}
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 5 and local_times(seen) == {"18:00"}


async def test_many_series_vanishing_at_once_ask_staff(bench: Bench) -> None:
    first, today = SEASONS["spring"]
    bench.clock.now = at(today, "09:00")
    made = []
    for hour in ("10:00", "12:00", "14:00"):
        client = await bench.client(len(made) + 1)
        made.append(
            await bench.series.create(bench.request(client, at(first, hour), count=3), actor="x", confirmed=True)
        )
    await bench.flush()
    await bench.series.reconcile("ana")
    for series, _rows in made:
        delete_raw(bench.server, f"{series.uid}.ics")
    assert (await bench.series.reconcile("ana")).incident is None
    bench.clock.now += MISSING_CONFIRM
    found = await bench.series.reconcile("ana")
    assert found.changes == [] and found.incident is not None
    assert len(found.incident.appointments) == 9
    assert (await bench.series.reconcile("ana")).incident is None  # asked once
    for series, _rows in made:
        assert {r.status for r in await bench.rows(series.id)} == {Status.CONFIRMED}
    _incident, changes = await bench.booking.sync.resolve(found.incident.id, STAFF, restore=True)
    assert changes == []
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 9 and sorted(local_times(seen)) == ["10:00", "12:00", "14:00"]


async def test_reminders_once_per_occurrence(bench: Bench) -> None:
    _series, rows = await book(bench, "spring", count=3)
    sent: list[int] = []
    for week in range(3):
        for _hour in range(3):  # several sweeps while each reminder is due
            bench.clock.now = rows[week].start - timedelta(hours=23 - _hour)
            sent += [a.id for a in await bench.booking.claim_reminders()]
    assert sent == [r.id for r in rows]


async def test_requested_series_approved_or_declined_as_a_whole(bench: Bench) -> None:
    first, today = SEASONS["spring"]
    bench.clock.now = at(today, "09:00")
    client = await bench.client()
    series, rows = await bench.series.create(
        bench.request(client, at(first, "18:00"), count=4), actor=f"client:{client}", confirmed=False
    )
    assert {r.status for r in rows} == {Status.REQUESTED}
    seen = await assert_calendar_matches(bench)
    assert "STATUS:TENTATIVE" in calendar_objects(bench.server)[f"{series.uid}.ics"]
    with pytest.raises(NotAllowed):
        await bench.series.decide(series.id, 999, approve=True)
    _, decided = await bench.series.decide(series.id, STAFF, approve=True)
    assert len(decided) == 4
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 4 and "STATUS:CONFIRMED" in calendar_objects(bench.server)[f"{series.uid}.ics"]

    other, _rows2 = await bench.series.create(
        bench.request(client, at(first, "12:00"), count=3), actor=f"client:{client}", confirmed=False
    )
    await bench.series.decide(other.id, STAFF, approve=False, reason="full")
    assert {r.status for r in await bench.rows(other.id)} == {Status.DECLINED}
    await assert_calendar_matches(bench)
    assert f"{other.uid}.ics" not in calendar_objects(bench.server)


@pytest.mark.parametrize("season", ["spring", "autumn"])
async def test_a_single_request_approved_as_a_course_becomes_the_recurring_event(bench: Bench, season: str) -> None:
    from scheduling.booking import Request
    from scheduling.model import Channel

    first, today = SEASONS[season]
    bench.clock.now = at(today, "09:00")
    client = await bench.client()
    request = await bench.booking.request(
        Request(client, "therapy", "centre", "ana", Channel.ON_SITE, at(first, "18:00"))
    )
    await bench.flush()
    assert set(calendar_objects(bench.server)) == {f"{request.uid}.ics"}
    clash = at((datetime.fromisoformat(first) + 2 * WEEK).date().isoformat(), "18:30")
    put_raw(bench.server, "dentist.ics", foreign_event("dentist", clash))
    plan = await bench.series.plan_approval(request.id, STAFF, interval_weeks=1, count=8)
    assert [c.start for c in plan.conflicts] == [clash - timedelta(minutes=30)]
    with pytest.raises(SeriesConflicts):
        await bench.series.approve_recurring(request.id, STAFF, interval_weeks=1, count=8)
    assert await counts(bench) == (0, 1)  # nothing saved half-way
    with pytest.raises(NotAllowed):
        await bench.series.approve_recurring(request.id, 999, interval_weeks=1, count=8)
    series, rows = await bench.series.approve_recurring(
        request.id, STAFF, interval_weeks=1, count=8, skip=[plan.conflicts[0].start]
    )
    assert series.uid == request.uid and rows[0].id == request.id and len(rows) == 7
    assert {r.status for r in await bench.rows(series.id)} == {Status.CONFIRMED}
    seen = await assert_calendar_matches(bench)
    assert len(seen) == 7 and local_times(seen) == {"18:00"}
    objects = calendar_objects(bench.server)
    assert set(objects) == {f"{request.uid}.ics", "dentist.ics"}  # the request's event, now recurring
    assert "RRULE:FREQ=WEEKLY" in objects[f"{request.uid}.ics"] and "EXDATE" in objects[f"{request.uid}.ics"]


async def test_a_request_whose_time_began_is_not_approved_as_a_course(bench: Bench) -> None:
    from scheduling.booking import Lapsed, Request
    from scheduling.model import Channel

    first, today = SEASONS["spring"]
    bench.clock.now = at(today, "09:00")
    client = await bench.client()
    request = await bench.booking.request(
        Request(client, "therapy", "centre", "ana", Channel.ON_SITE, at(first, "18:00"))
    )
    bench.clock.now = request.start
    with pytest.raises(Lapsed):
        await bench.series.approve_recurring(request.id, STAFF, interval_weeks=1, count=4)
    assert await counts(bench) == (0, 1)
