"""Group sessions against real Radicale and Xandikos: seats counted under the specialist's lock (three racing
clients take the three seats, a fourth is refused), a cancelled seat booked again, seats left shown with the
free times, automatic approval, and one calendar event per session whose expansion and participants equal the
rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import recurring_ical_events
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar
from sqlalchemy import select
from telegram.ext import ApplicationBuilder

from bot.calendar_text import client_series_event_for, group_event_for
from bot.runtime import start_runtime
from bot.settings import Settings
from bot.web import feed_key, feed_token, make_web_app
from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.ical import ics_bytes
from scheduling import booking
from scheduling.booking import BookingService, InvalidRequest, Request, SlotTaken
from scheduling.calendar_sync import MISSING_CONFIRM
from scheduling.config import ConfigError, Practice, parse_practice
from scheduling.conflicts import ProblemKind
from scheduling.db import AppointmentRow, GroupRow
from scheduling.model import IN_CALENDAR, Channel, Status
from scheduling.privacy import initials
from scheduling.recurrence import Scope
from scheduling.series import SeriesConflicts, SeriesRequest
from scheduling.staff import NotAllowed, require_staff
from scheduling.store import Store
from scheduling.visits import NeedsDecision, StaffBooking, Visit
from scheduling.waitlist import WaitingList
from tests.fixtures.caldav import CalDAVServer, account_of, delete_raw, get_raw, put_raw
from tests.fixtures.proxy import FaultProxy
from tests.fixtures.series import ZONE, Bench, Clock, at, calendar_objects
from tests.fixtures.series import bench_on as series_bench_on

STAFF = 500
DAY = "2026-03-03"  # a Tuesday


def group_practice(server: CalDAVServer) -> dict[str, object]:
    """Ana runs a 90-minute group of three (asked for) and a circle of two (confirmed at once) in Warsaw."""
    return {
        "practice": {"name": "Test practice", "timezone": ZONE},
        "locations": [{"id": "centre", "name": "Centre"}],
        "services": [
            {"id": "group", "name": "Group therapy", "duration": 90, "start_every": 60, "seats": 3},
            {"id": "circle", "name": "Circle", "duration": 60, "start_every": 60, "seats": 2, "auto_approve": True},
            {"id": "therapy", "name": "Therapy", "duration": 50, "start_every": 60},
        ],
        "specialists": [
            {
                "id": "ana",
                "name": "Ana",
                "telegram_id": STAFF,
                "services": ["group", "circle", "therapy"],
                "min_notice_hours": 2,
                "schedule": [
                    {"weekday": "mon", "start": "09:00", "end": "21:00", "location": "centre"},
                    {"weekday": "tue", "start": "09:00", "end": "21:00", "location": "centre"},
                ],
                "caldav": {
                    "url": server.url,
                    "username": server.username,
                    "password_env": "BOOKINGBOT_TEST_CALDAV_PASSWORD",
                    "booking_calendar": server.calendar,
                },
            }
        ],
    }


@pytest_asyncio.fixture
async def bench(caldav_server: CalDAVServer, sqlite_store: Store) -> AsyncIterator[Bench]:
    async with bench_on(caldav_server, sqlite_store) as made:
        yield made


@asynccontextmanager
async def bench_on(caldav_server: CalDAVServer, sqlite_store: Store, url: str | None = None) -> AsyncIterator[Bench]:
    """The group bench on the server, reached at `url` when given (a proxy in front of it)."""
    async with series_bench_on(caldav_server, sqlite_store, parse_practice(group_practice(caldav_server)), url) as made:
        yield made


def seat(client_id: int, start: datetime, service: str = "group") -> Request:
    return Request(client_id, service, "centre", "ana", Channel.ON_SITE, start)


NAMES = ("Ada Lis", "Bo Kot", "Cyd Wren", "Dan Ek")


async def clients(bench: Bench, n: int) -> list[int]:
    """Clients with names whose initials differ (the calendar shows initials by default)."""
    out = []
    for i in range(n):
        async with bench.store.tx() as tx:
            row = await tx.upsert_client(100 + i, name=NAMES[i], phone="+48601234567")
        out.append(row.id)
    return out


async def times(bench: Bench, service: str = "group") -> dict[str, int | None]:
    """The day's free local times with their seats left."""
    slots = await bench.booking.day_slots(service, "centre", ["ana"], datetime.fromisoformat(DAY).date())
    return {local(s.start): s.seats_left for s in slots}


def local(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%H:%M")


async def assert_sessions_match(bench: Bench) -> dict[str, Calendar]:
    """After the outbox ran: each session with a seat in the calendar is one event, once, at its time, listing
    exactly those seats' clients; single visits are their own events. Returns each session's event by UID."""
    while await bench.worker.run_once():
        pass
    async with bench.store.tx() as tx:
        rows = list((await tx.session.scalars(select(AppointmentRow))).all())
        groups = {g.id: g for g in (await tx.session.scalars(select(GroupRow))).all()}
    expected: list[tuple[str, datetime, datetime]] = []
    names: dict[str, list[str]] = {}
    for g in groups.values():
        present = [r for r in rows if r.group_id == g.id and r.status in IN_CALENDAR]
        if present:
            expected.append((g.uid, g.start, g.end))
            names[g.uid] = sorted(initials(r.client.name) or "" for r in present)
    expected += [(r.uid, r.start, r.end) for r in rows if r.group_id is None and r.status in IN_CALENDAR]
    seen: list[tuple[str, datetime, datetime]] = []
    events: dict[str, Calendar] = {}
    lo, hi = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    for text in calendar_objects(bench.server).values():
        cal = Calendar.from_ical(text)
        for ev in recurring_ical_events.of(cal).between(lo, hi):
            seen.append((str(ev["UID"]), ev.decoded("DTSTART").astimezone(UTC), ev.decoded("DTEND").astimezone(UTC)))
            events[str(ev["UID"])] = ev
    assert sorted(seen) == sorted(expected)
    for uid, want in names.items():
        description = str(events[uid]["DESCRIPTION"])
        listed = sorted(line[2:].split(";")[0] for line in description.splitlines() if line.startswith("- "))
        assert listed == want
        assert "+48601234567" not in description and "Ada" not in description  # the minimum by default
    return events


async def test_three_racing_clients_take_three_seats_and_a_fourth_is_refused(bench: Bench) -> None:
    start = at(DAY, "18:00")
    assert (await times(bench))["18:00"] == 3
    ids = await clients(bench, 4)
    results = await asyncio.gather(*(bench.booking.request(seat(c, start)) for c in ids), return_exceptions=True)
    booked = [r for r in results if isinstance(r, AppointmentRow)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(booked) == 3 and len(refused) == 1
    assert isinstance(refused[0], SlotTaken)
    assert "18:00" not in {local(s.start) for s in refused[0].remaining}  # the rest of the day, not the full session
    assert len({b.group_id for b in booked}) == 1 and all(b.status == Status.REQUESTED for b in booked)
    assert "18:00" not in await times(bench)  # full: no longer offered
    events = await assert_sessions_match(bench)
    [event] = events.values()
    assert local(event.decoded("DTSTART")) == "18:00" and event["DTSTART"].params["TZID"] == ZONE
    assert str(event["STATUS"]) == "TENTATIVE"
    assert "Participants: 3 of 3" in str(event["DESCRIPTION"])
    assert len(calendar_objects(bench.server)) == 1


async def test_seats_left_shown_and_the_session_blocks_other_starts(bench: Bench) -> None:
    start = at(DAY, "18:00")
    first, second = await clients(bench, 2)
    await bench.booking.request(seat(first, start))
    free = await times(bench)
    assert free["18:00"] == 2 and free["09:00"] == 3
    # 90 minutes from 18:00: neither 17:00 nor 19:00 fits beside it, for the group or another service.
    assert "17:00" not in free and "19:00" not in free
    therapy = await times(bench, "therapy")
    assert "17:00" in therapy and "18:00" not in therapy and "19:00" not in therapy and "20:00" in therapy
    # A second seat for the same client is refused; another client takes one.
    with pytest.raises(InvalidRequest):
        await bench.booking.request(seat(first, start))
    await bench.booking.request(seat(second, start))
    assert (await times(bench))["18:00"] == 1
    # Another service cannot take the session's time either.
    with pytest.raises(SlotTaken):
        await bench.booking.request(Request(second, "therapy", "centre", "ana", Channel.ON_SITE, start))
    await assert_sessions_match(bench)


async def test_a_cancelled_seat_frees_up_and_is_booked_again(bench: Bench) -> None:
    start = at(DAY, "18:00")
    ids = await clients(bench, 4)
    seats = [await bench.booking.request(seat(c, start)) for c in ids[:3]]
    for s in seats:
        await bench.booking.approve(s.id, STAFF)
    events = await assert_sessions_match(bench)
    [before] = events.values()
    assert str(before["STATUS"]) == "CONFIRMED"
    with pytest.raises(SlotTaken):
        await bench.booking.request(seat(ids[3], start))

    await bench.booking.cancel_by_client(seats[1].id, ids[1])
    assert (await times(bench))["18:00"] == 1
    events = await assert_sessions_match(bench)
    assert "Participants: 2 of 3" in str(next(iter(events.values()))["DESCRIPTION"])

    again = await bench.booking.request(seat(ids[3], start))
    assert again.group_id == seats[0].group_id
    await bench.booking.approve(again.id, STAFF)
    events = await assert_sessions_match(bench)
    [after] = events.values()
    assert str(after["UID"]) == str(before["UID"])
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert "- B. K." not in str(after["DESCRIPTION"]) and "- D. E." in str(after["DESCRIPTION"])
    assert "18:00" not in await times(bench)


async def test_declined_seats_leave_the_event_and_the_last_one_removes_it(bench: Bench) -> None:
    start = at(DAY, "10:00")
    a, b = await clients(bench, 2)
    first = await bench.booking.request(seat(a, start))
    second = await bench.booking.request(seat(b, start))
    await bench.booking.decline(first.id, STAFF, "full")
    await assert_sessions_match(bench)
    await bench.booking.decline(second.id, STAFF, "full")
    await assert_sessions_match(bench)
    assert calendar_objects(bench.server) == {}
    assert (await times(bench))["10:00"] == 3


async def test_auto_approve_confirms_each_seat_at_once(bench: Bench) -> None:
    start = at(DAY, "12:00")
    a, b, c = await clients(bench, 3)
    first = await bench.booking.request(seat(a, start, "circle"))
    assert first.status == Status.CONFIRMED and first.expires_at is None
    assert (await times(bench, "circle"))["12:00"] == 1
    await bench.booking.request(seat(b, start, "circle"))
    with pytest.raises(SlotTaken):
        await bench.booking.request(seat(c, start, "circle"))
    events = await assert_sessions_match(bench)
    [event] = events.values()
    assert str(event["STATUS"]) == "CONFIRMED"
    async with bench.store.tx() as tx:
        [created] = await tx.transitions(first.id)
    assert created.actor == f"client:{a}" and created.details == {"auto_approved": True}


def test_seats_and_auto_approve_are_checked(caldav_server: CalDAVServer) -> None:
    raw = group_practice(caldav_server)
    raw["services"][0]["seats"] = 0  # type: ignore[index]
    with pytest.raises(ConfigError) as info:
        parse_practice(raw)
    assert info.value.errors == ["services[0].seats: Input should be greater than or equal to 1"]
    raw = group_practice(caldav_server)
    raw["services"][1]["auto_approve"] = "sometimes"  # type: ignore[index]
    with pytest.raises(ConfigError) as info:
        parse_practice(raw)
    assert info.value.errors[0].startswith("services[1].auto_approve:")
    raw = group_practice(caldav_server)
    raw["partners"] = [{"id": "ins", "name": "Insurer", "label": "INS", "key_envs": ["K"], "services": ["group"]}]
    with pytest.raises(ConfigError) as info:
        parse_practice(raw)
    assert info.value.errors == ["partners[0].services[0]: 'group' is a group session (seats > 1)"]
    practice: Practice = parse_practice(group_practice(caldav_server))
    assert practice.service_by_id["therapy"].seats == 1 and not practice.service_by_id["therapy"].auto_approve


async def test_later_time_same_day_after_a_session(bench: Bench) -> None:
    """A seat's buffer-free end leaves the next full hour after the session bookable."""
    a = (await clients(bench, 1))[0]
    await bench.booking.request(seat(a, at(DAY, "09:00")))
    free = await times(bench)
    assert free["09:00"] == 2 and "10:00" not in free and free["11:00"] == 3


async def test_participants_in_full_when_the_practice_chooses_it(bench: Bench) -> None:
    """With `calendar_detail = "full"` each participant line carries what a single visit's event would."""
    start = at(DAY, "18:00")
    a, b = await clients(bench, 2)
    first = await bench.booking.request(seat(a, start))
    await bench.booking.request(Request(b, "group", "centre", "ana", Channel.ON_SITE, start, note="Late by 5 min"))
    await bench.booking.approve(first.id, STAFF)
    async with bench.store.tx() as tx:
        group = await tx.get_group(first.group_id or 0)
        seats = await tx.group_seats(first.group_id or 0)
    assert group is not None
    spec = group_event_for(bench.practice, group, seats, "full")
    assert spec is not None
    listed = [line for line in spec.description.splitlines() if line.startswith("- ")]
    assert listed == [
        "- Ada Lis; Phone: +48601234567",
        "- Bo Kot; Phone: +48601234567; Note: Late by 5 min; waiting for your approval in Telegram",
    ]
    assert spec.summary == "Group therapy: group of 2" and spec.status == "CONFIRMED"
    minimal = group_event_for(bench.practice, group, seats)
    assert minimal is not None and "Late" not in minimal.description and "- A. L." in minimal.description


async def test_the_feed_shows_a_session_once(
    tmp_path: Path, radicale_account: CalDAVServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The specialist's read-only feed holds one event per session, as the calendar does, not one per seat."""
    monkeypatch.setenv("BOOKINGBOT_TEST_CALDAV_PASSWORD", radicale_account.password)
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'bookingbot.sqlite3'}")
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    runtime = await start_runtime(settings, parse_practice(group_practice(radicale_account)), clock=lambda: now)
    app = ApplicationBuilder().token("1:T").updater(None).build()  # never started: the feed needs no Telegram
    client = TestClient(TestServer(make_web_app(runtime, app, settings)))
    await client.start_server()
    try:
        for i, name in enumerate(NAMES[:3]):
            async with runtime.store.tx() as tx:
                row = await tx.upsert_client(300 + i, name=name, phone="+48601234567")
            await runtime.booking.request(seat(row.id, at(DAY, "18:00")))
        token = feed_token(feed_key(settings.data_dir), "ana")
        resp = await client.get(f"/feeds/ana/{token}.ics")
        assert resp.status == 200
        [event] = Calendar.from_ical(await resp.read()).walk("VEVENT")
        assert "Participants: 3 of 3" in str(event["DESCRIPTION"]) and "+48" not in str(event["DESCRIPTION"])
        assert event.decoded("DTSTART").astimezone(UTC) == at(DAY, "18:00")
    finally:
        await client.close()
        await runtime.close()


async def test_the_practice_books_a_client_into_a_session(bench: Bench) -> None:
    """/new on a group service takes a seat in the session at that time, under the same seat count."""
    start = at(DAY, "18:00")
    a, b, c, e = await clients(bench, 4)
    booked = StaffBooking(bench.booking)
    staff = require_staff(bench.practice, STAFF)
    first = await bench.booking.request(seat(a, start))
    visit = Visit(b, "ana", "group", "centre", Channel.ON_SITE, start)
    assert (await booked.check(visit)).problems == []  # the session has room: no collision
    second = await booked.book(staff, visit)
    assert second.group_id == first.group_id and second.status == Status.PROPOSED
    with pytest.raises(NotAllowed):
        await booked.book(staff, Visit(a, "ana", "group", "centre", Channel.ON_SITE, start))  # already has a seat
    await booked.book(staff, Visit(c, "ana", "group", "centre", Channel.ON_SITE, start))
    with pytest.raises(NeedsDecision) as full:
        await booked.book(staff, Visit(e, "ana", "group", "centre", Channel.ON_SITE, start), accepted=["collision"])
    assert {p.kind for p in full.value.check.problems} == {ProblemKind.COLLISION}
    events = await assert_sessions_match(bench)
    assert "Participants: 3 of 3" in str(next(iter(events.values()))["DESCRIPTION"])


async def test_a_client_joins_the_weekly_group_from_a_date(bench: Bench) -> None:
    """Weekly group therapy on the series model: a seat in each week's session from the chosen date, across the
    spring clock change, a full week listed and skipped, the course approved and one week cancelled as a whole."""
    weeks = [at(day, "18:00") for day in ("2026-03-03", "2026-03-10", "2026-03-17", "2026-03-24", "2026-03-31")]
    joiner, *others = await clients(bench, 4)
    for other in others:
        await bench.booking.request(seat(other, weeks[2]))  # the third week is full
    req = SeriesRequest(joiner, "group", "centre", "ana", Channel.ON_SITE, weeks[0], count=5)
    plan = await bench.series.plan(req)
    assert [c.start for c in plan.conflicts] == [weeks[2]]
    with pytest.raises(SeriesConflicts) as full:
        await bench.series.create(req, actor=f"client:{joiner}", confirmed=False)
    assert full.value.skippable and [c.start for c in full.value.conflicts] == [weeks[2]]
    series, rows = await bench.series.create(req, actor=f"client:{joiner}", confirmed=False, skip=[weeks[2]])
    assert [r.start for r in rows] == [w for w in weeks if w != weeks[2]]
    assert {local(r.start) for r in rows} == {"18:00"}  # 31 March is summer time: still 18:00 in Warsaw
    assert len({r.group_id for r in rows}) == 4 and all(r.series_id == series.id for r in rows)
    assert (await times(bench))["18:00"] == 2  # the first week's session has room for two more
    events = await assert_sessions_match(bench)
    assert len(events) == 5 and not any(b"RRULE" in e.to_ical() for e in events.values())

    await bench.series.decide(series.id, STAFF, approve=True)
    events = await assert_sessions_match(bench)
    mine = {r.group_id for r in rows}
    async with bench.store.tx() as tx:
        uids = {(await tx.get_group(g)).uid for g in mine}  # type: ignore[union-attr]
    assert all(str(events[uid]["STATUS"]) == "CONFIRMED" for uid in uids)

    await bench.series.cancel(rows[1].id, Scope.THIS, client_id=joiner)
    events = await assert_sessions_match(bench)
    assert len(events) == 4  # the second week's session had only them: its event is gone
    with pytest.raises(booking.NotAllowed):
        await bench.series.move(rows[0].id, Scope.THIS, weeks[0] + timedelta(hours=1), telegram_id=STAFF)


async def test_six_racing_clients_get_three_seats_on_both_databases(
    store: Store, radicale_account: CalDAVServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seat count holds on PostgreSQL too, where the transactions really run side by side."""
    monkeypatch.setenv("BOOKINGBOT_TEST_CALDAV_PASSWORD", radicale_account.password)
    practice = parse_practice(group_practice(radicale_account))
    clock = Clock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    gateway = CalDAVGateway(practice, accounts={"ana": account_of(radicale_account)}, clock=clock)
    await gateway.start()
    try:
        booking = BookingService(practice, store, gateway, clock=clock)
        ids = []
        for i in range(6):
            async with store.tx() as tx:
                ids.append((await tx.upsert_client(400 + i, name=f"Racer {i}", phone="+48601234567")).id)
        start = at(DAY, "18:00")
        results = await asyncio.gather(*(booking.request(seat(c, start)) for c in ids), return_exceptions=True)
        booked = [r for r in results if isinstance(r, AppointmentRow)]
        assert len(booked) == 3 and all(isinstance(r, SlotTaken) for r in results if r not in booked)
        async with store.tx() as tx:
            groups = (await tx.session.scalars(select(GroupRow))).all()
            seats = await tx.group_seats(groups[0].id)
        assert len(groups) == 1 and sorted(s.id for s in seats) == sorted(b.id for b in booked)
    finally:
        await gateway.close()


async def test_a_freed_seat_goes_to_the_waiting_list(bench: Bench) -> None:
    """A client waiting for the day of a full session is offered the seat someone gave up, and takes it."""
    start = at(DAY, "18:00")
    a, b, c, waiting = await clients(bench, 4)
    seats = [await bench.booking.request(seat(x, start)) for x in (a, b, c)]
    queue = WaitingList(bench.booking)
    day = start.astimezone(ZoneInfo(ZONE)).date()
    entry = await queue.join(
        waiting,
        service_id="group",
        location_id="centre",
        specialist_id="ana",
        first_day=day,
        last_day=day,
        only_new=True,
    )
    assert await queue.time_freed("ana") == []  # nothing new is free: the session is full
    await bench.booking.cancel_by_client(seats[1].id, b)
    [offer] = await queue.time_freed("ana")
    assert offer.start == start and offer.entry.id == entry.id
    taken = await queue.accept(entry.id, waiting)
    assert taken.group_id == seats[0].group_id and taken.client_id == waiting
    assert "18:00" not in await times(bench)
    await assert_sessions_match(bench)


# --- edits made to a session's event in a calendar app (a second CalDAV client) -------------------------------------


async def filled_session(bench: Bench) -> tuple[GroupRow, list[AppointmentRow]]:
    """A session at 18:00 with two confirmed seats, one waiting for approval and one cancelled; all written."""
    ids = await clients(bench, 4)
    seats = [await bench.booking.request(seat(c, at(DAY, "18:00"))) for c in ids[:3]]
    for s in seats[:2]:
        await bench.booking.approve(s.id, STAFF)
    await bench.booking.cancel_by_client(seats[1].id, ids[1])
    seats.append(await bench.booking.request(seat(ids[3], at(DAY, "18:00"))))
    await assert_sessions_match(bench)
    async with bench.store.tx() as tx:
        group = await tx.get_group(seats[0].group_id or 0)
    assert group is not None
    return group, [seats[0], seats[2], seats[3]]


async def seat_rows(bench: Bench, group_id: int) -> list[AppointmentRow]:
    async with bench.store.tx() as tx:
        return await tx.group_seats(group_id)


def drag(bench: Bench, uid: str, start: datetime, end: datetime) -> None:
    """Move the session's event as a calendar app would: new DTSTART and DTEND, the rest kept."""
    cal = Calendar.from_ical(get_raw(bench.server, f"{uid}.ics").text)
    [event] = cal.walk("VEVENT")
    zone = event.decoded("DTSTART").tzinfo
    for name, value in (("DTSTART", start), ("DTEND", end)):
        del event[name]
        event.add(name, value.astimezone(zone))
    event["SEQUENCE"] = int(event["SEQUENCE"]) + 1
    assert put_raw(bench.server, f"{uid}.ics", cal.to_ical().decode()).status_code in (201, 204)


async def test_a_session_moved_in_the_calendar_app_moves_every_active_seat(bench: Bench) -> None:
    group, active = await filled_session(bench)
    assert (await bench.booking.sync.reconcile("ana")).changes == []  # read back as we wrote it
    new_start = at(DAY, "15:00")
    drag(bench, group.uid, new_start, new_start + timedelta(minutes=90))
    found = await bench.booking.sync.reconcile("ana")
    assert sorted(c.appointment.id for c in found.changes) == sorted(a.id for a in active)
    assert all(not c.removed and c.old_start == at(DAY, "18:00") for c in found.changes)
    rows = {r.id: r for r in await seat_rows(bench, group.id)}
    assert {rows[a.id].start for a in active} == {new_start}
    assert {rows[a.id].status for a in active} == {Status.CONFIRMED, Status.REQUESTED}
    events = await assert_sessions_match(bench)  # the group row moved too, and the event is ours again
    [event] = events.values()
    assert local(event.decoded("DTSTART")) == "15:00" and int(event["SEQUENCE"]) > 1
    assert (await bench.booking.sync.reconcile("ana")).changes == []  # our rewrite read back as unchanged
    free = await times(bench)
    assert "15:00" not in free and free["18:00"] == 3  # the session is full at its new time; the old one is free


async def test_a_session_deleted_once_is_kept_twice_minutes_apart_is_cancelled(bench: Bench) -> None:
    group, active = await filled_session(bench)
    assert (await bench.booking.sync.reconcile("ana")).changes == []  # seen since our write
    delete_raw(bench.server, f"{group.uid}.ics")
    assert (await bench.booking.sync.reconcile("ana")).changes == []  # missing once: nothing cancelled
    assert {r.status for r in await seat_rows(bench, group.id) if r.id in {a.id for a in active}} == {
        Status.CONFIRMED,
        Status.REQUESTED,
    }
    bench.clock.now += MISSING_CONFIRM - timedelta(seconds=1)
    assert (await bench.booking.sync.reconcile("ana")).changes == []  # not minutes apart yet
    bench.clock.now += timedelta(seconds=1)
    found = await bench.booking.sync.reconcile("ana")
    assert sorted(c.appointment.id for c in found.changes) == sorted(a.id for a in active)
    assert all(c.removed for c in found.changes) and found.incident is None
    statuses = {r.id: r.status for r in await seat_rows(bench, group.id)}
    assert sorted(statuses[a.id] for a in active) == sorted([Status.CANCELLED, Status.DECLINED, Status.DECLINED])
    assert await assert_sessions_match(bench) == {}
    assert calendar_objects(bench.server) == {}
    assert (await bench.booking.sync.reconcile("ana")).changes == []


async def test_a_session_the_server_lost_is_written_again(bench: Bench) -> None:
    group, active = await filled_session(bench)
    delete_raw(bench.server, f"{group.uid}.ics")  # gone before any read showed it: the server lost our write
    assert (await bench.booking.sync.reconcile("ana")).changes == []
    bench.clock.now += MISSING_CONFIRM
    assert (await bench.booking.sync.reconcile("ana")).changes == []
    events = await assert_sessions_match(bench)
    assert list(events) == [group.uid]
    assert {r.status for r in await seat_rows(bench, group.id) if r.id in {a.id for a in active}} == {
        Status.CONFIRMED,
        Status.REQUESTED,
    }


async def test_a_session_edit_waits_while_its_write_is_pending(bench: Bench) -> None:
    group, active = await filled_session(bench)
    assert (await bench.booking.sync.reconcile("ana")).changes == []
    drag(bench, group.uid, at(DAY, "15:00"), at(DAY, "16:30"))
    await bench.booking.approve(active[1].id, STAFF)  # a seat changed: our write of the event is queued
    assert (await bench.booking.sync.reconcile("ana")).changes == []  # not judged against a stale copy
    events = await assert_sessions_match(bench)  # our write wins: the session keeps its time
    assert local(next(iter(events.values())).decoded("DTSTART")) == "18:00"


async def test_a_server_in_trouble_never_counts_as_a_deletion(caldav_server: CalDAVServer, sqlite_store: Store) -> None:
    """Reads answered abnormally (500 to the calendar read, 503 to the event's own GET) change nothing and do not
    count as reads that missed the event: only two good reads minutes apart cancel the session's seats."""
    async with FaultProxy(caldav_server.url) as proxy, bench_on(caldav_server, sqlite_store, proxy.url) as bench:
        group, active = await filled_session(bench)
        assert (await bench.booking.sync.reconcile("ana")).changes == []  # seen since our write
        delete_raw(bench.server, f"{group.uid}.ics")
        refused: list[str] = []

        def failing(status: int, *, event_only: bool) -> Callable[[web.Request], int | None]:
            def answer(request: web.Request) -> int | None:
                if request.method in ("PROPFIND", "REPORT", "GET") and (
                    not event_only or request.path.endswith(f"{group.uid}.ics")
                ):
                    refused.append(request.method)
                    return status
                return None

            return answer

        for fail in (failing(500, event_only=False), failing(503, event_only=True)):
            proxy.fail = fail
            refused.clear()
            for _ in range(2):
                assert (await bench.booking.sync.reconcile("ana")).changes == []
                bench.clock.now += MISSING_CONFIRM
            assert refused  # the reads really met the trouble
            rows = {r.id: r for r in await seat_rows(bench, group.id)}
            assert all(rows[a.id].status in (Status.CONFIRMED, Status.REQUESTED) for a in active)
            assert all(rows[a.id].missing_since is None for a in active)
        proxy.fail = lambda r: None
        assert (await bench.booking.sync.reconcile("ana")).changes == []  # the first good read that misses it
        bench.clock.now += MISSING_CONFIRM
        found = await bench.booking.sync.reconcile("ana")
        assert sorted(c.appointment.id for c in found.changes) == sorted(a.id for a in active)


async def test_a_session_with_a_weekly_seat_moved_in_the_calendar_app_moves_that_week_of_the_course(
    bench: Bench,
) -> None:
    """A week's session holding a client's weekly seat and another client's single seat is dragged an hour later:
    both seats move; the course keeps its rule and that week becomes a moved visit in the client's course file."""
    weeks = [at(day, "18:00") for day in ("2026-03-03", "2026-03-10", "2026-03-17")]
    joiner, single = await clients(bench, 2)
    series, rows = await bench.series.create(
        SeriesRequest(joiner, "group", "centre", "ana", Channel.ON_SITE, weeks[0], count=3),
        actor=f"client:{joiner}",
        confirmed=False,
    )
    await bench.series.decide(series.id, STAFF, approve=True)
    other = await bench.booking.request(seat(single, weeks[0]))
    await bench.booking.approve(other.id, STAFF)
    await assert_sessions_match(bench)
    assert (await bench.booking.sync.reconcile("ana")).changes == []
    async with bench.store.tx() as tx:
        group = await tx.get_group(rows[0].group_id or 0)
    assert group is not None
    later = weeks[0] + timedelta(hours=1)
    drag(bench, group.uid, later, later + timedelta(minutes=90))
    assert (await bench.series.reconcile("ana")).changes == []  # not a series resource: left to the session's sync
    found = await bench.booking.sync.reconcile("ana")
    assert sorted(c.appointment.id for c in found.changes) == sorted([rows[0].id, other.id])
    async with bench.store.tx() as tx:
        course = await tx.series_rows(series.id)
    assert [r.start for r in course] == [later, weeks[1], weeks[2]]
    assert [r.recurrence_id for r in course] == [r.recurrence_id for r in rows]
    await assert_sessions_match(bench)
    assert (await bench.booking.sync.reconcile("ana")).changes == []
    spec = client_series_event_for(bench.practice, series, course, "en")
    assert spec is not None
    own = recurring_ical_events.of(Calendar.from_ical(ics_bytes(spec)))
    expanded_course = own.between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert sorted(e.decoded("DTSTART").astimezone(UTC) for e in expanded_course) == [later, weeks[1], weeks[2]]


async def test_sessions_vanishing_at_once_ask_staff_and_their_answer_reaches_every_seat(bench: Bench) -> None:
    """Three sessions gone together is a question for staff, not three deletions; "they were cancelled" then
    cancels every seat of every session. A session counts once: one session of three seats vanishing is no mass."""
    ids = await clients(bench, 4)
    booked = []
    for hour, takers in (("09:00", ids[:2]), ("12:00", ids[2:]), ("15:00", ids[:1])):
        for client in takers:
            booked.append(await bench.booking.request(seat(client, at(DAY, hour))))
    await assert_sessions_match(bench)
    assert (await bench.booking.sync.reconcile("ana")).changes == []
    for uid in calendar_objects(bench.server):
        delete_raw(bench.server, uid)
    assert (await bench.booking.sync.reconcile("ana")).incident is None
    bench.clock.now += MISSING_CONFIRM
    found = await bench.booking.sync.reconcile("ana")
    assert found.changes == [] and found.incident is not None
    assert sorted(a.id for a in found.incident.appointments) == sorted(b.id for b in booked)
    assert (await bench.booking.sync.reconcile("ana")).incident is None  # asked once
    _incident, changes = await bench.booking.sync.resolve(found.incident.id, STAFF, restore=False)
    assert sorted(c.appointment.id for c in changes) == sorted(b.id for b in booked)
    async with bench.store.tx() as tx:
        assert {(await tx.get_appointment(b.id)).status for b in booked} == {Status.DECLINED}  # type: ignore[union-attr]
    assert await assert_sessions_match(bench) == {}
