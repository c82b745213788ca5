"""End to end: a client asks for the same time every week, the specialist approves the series as a whole, the
client sees one line per series in /my, expands it and cancels one visit; the calendar follows every step."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import recurring_ical_events
from icalendar import Calendar

from scheduling.model import Status
from tests.fixtures.bot import Bot
from tests.fixtures.caldav import CalDAVServer
from tests.fixtures.series import expanded, expected
from tests.test_e2e_booking import book_first_consultation

WARSAW = ZoneInfo("Europe/Warsaw")


def anna_calendar(bot: Bot) -> CalDAVServer:
    account = bot.runtime.accounts["anna"]
    url = account.calendar_url if account.calendar_url.endswith("/") else account.calendar_url + "/"
    return CalDAVServer("radicale", account.url, account.username, account.password, "", url, "")


async def assert_calendar_matches(bot: Bot) -> list[tuple[str, object, object]]:
    await bot.drain_calendar_writes()
    rows = await expected(bot.runtime.store)
    seen = [o for o in expanded(anna_calendar(bot)) if o[0] != "dentist"]
    assert seen == rows
    return seen


def dentist(bot: Bot) -> None:
    """Anna's own appointment on Wednesday 16 December, 09:00-10:00 Warsaw, written by another calendar client."""
    server = anna_calendar(bot)
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:dentist\r\n"
        "DTSTAMP:20261101T000000Z\r\nDTSTART:20261216T080000Z\r\nDTEND:20261216T090000Z\r\n"
        "SUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    r = httpx.put(
        server.calendar_url + "dentist.ics",
        content=body.encode(),
        headers={"Content-Type": "text/calendar; charset=utf-8"},
        auth=(server.username, server.password),
    )
    r.raise_for_status()


async def test_weekly_request_approved_whole_then_one_visit_cancelled_from_my(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    dentist(bot)
    book = book_first_consultation(client)
    # Stop at the summary: walk the dialog, but tap "Repeat every week" before sending.
    client_tap = client.tap

    async def tap(label: str, **kw: object) -> None:
        if label == "Send request":
            await client_tap("Repeat every week")
            assert "Repeats: every week at this time, 4 visits" in client.last.text
        await client_tap(label, **kw)  # type: ignore[arg-type]

    client.tap = tap  # type: ignore[method-assign]
    try:
        await book
    finally:
        client.tap = client_tap  # type: ignore[method-assign]
    # 16 December is taken: the summary says so, and the next tap sends the other three.
    assert "Taken, so left out: 16 Dec" in client.last.text
    await client.tap("Send request")
    await bot.emulator.wait_idle()
    assert "Your request for 3 weekly visits has been sent" in client.last.text

    requests = [m for m in bot.anna.messages if "New appointment request" in m.text]
    assert len(requests) == 1  # one request for the whole series
    assert "Recurring: every week, 3 visits:" in requests[0].text
    assert requests[0].buttons == [["Approve", "Decline"]]
    await bot.sweep()  # the sweep does not ask again for the other visits
    assert len([m for m in bot.anna.messages if "New appointment request" in m.text]) == 1
    seen = await assert_calendar_matches(bot)
    assert len(seen) == 3

    await bot.anna.tap("Approve")
    await bot.emulator.wait_idle()  # the client's confirmation follows the specialist's answer
    async with bot.runtime.store.tx() as tx:
        client_row = await tx.client_by_telegram(1001)
        appts = await tx.client_appointments(client_row.id)
    assert [a.status for a in appts] == [Status.CONFIRMED] * 3
    confirmations = [m for m in client.messages if "Your appointment is confirmed" in m.text]
    assert len(confirmations) == 1 and "Recurring: every week, 3 visits:" in confirmations[0].text
    ((name, data),) = client.documents
    assert name == "appointments.ics"
    master = next(c for c in Calendar.from_ical(data).walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert "COUNT=4" in master["RRULE"].to_ical().decode() and "EXDATE" in master
    # Written for the client: the visit and the specialist, never the client's phone or note.
    assert str(master["SUMMARY"]) == "First consultation with Anna Kowalska"
    assert "Phone" not in data.decode() and "quiet room" not in data.decode()
    seen = await assert_calendar_matches(bot)
    assert len(seen) == 3

    await client.send("/my")
    listing = client.last
    assert "↻" in listing.text and "(3 upcoming visits)" in listing.text
    assert listing.buttons == [["Show the visits of #1"]]
    await client.tap("Show the visits of #1")
    assert client.last.text.count("↻") == 3
    await client.tap("Cancel #2")
    await client.tap("Yes, cancel it")
    await bot.emulator.wait_idle()
    assert "cancelled" in [m.text for m in client.messages if m.text][-1]
    seen = await assert_calendar_matches(bot)
    assert len(seen) == 2
    assert any("The client cancelled" in m.text for m in bot.anna.messages)
    # The client's own calendar gets the series as it now stands: the same two visits, under the same UID.
    name, data = client.documents[-1]
    assert name == "appointments.ics" and len(client.documents) == 2
    theirs = sorted(
        (str(ev["UID"]), ev.decoded("DTSTART").astimezone(UTC), ev.decoded("DTEND").astimezone(UTC))
        for ev in recurring_ical_events.of(Calendar.from_ical(data)).between(
            datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
        )
    )
    assert theirs == seen


async def weekly_for(bot: Bot, client_telegram_id: int, hhmm: str = "10:00", count: int = 4):  # type: ignore[no-untyped-def]
    """A confirmed weekly series of Psychotherapy with Anna on Wednesdays from 2 December, for a bot user."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from scheduling.model import Channel
    from scheduling.series import SeriesRequest

    async with bot.runtime.store.tx() as tx:
        client_row = await tx.client_by_telegram(client_telegram_id)
    start = datetime.fromisoformat(f"2026-12-02T{hhmm}").replace(tzinfo=ZoneInfo("Europe/Warsaw"))
    req = SeriesRequest(client_row.id, "therapy", "centre", "anna", Channel.ON_SITE, start, count=count)
    return await bot.runtime.deps.series.create(req, actor="specialist:9001", confirmed=True)


async def test_a_series_deleted_in_the_calendar_app_counts_after_two_reads_minutes_apart(bot: Bot) -> None:
    from datetime import timedelta

    from tests.fixtures.caldav import delete_raw

    client = bot.user(1001, "Jan")
    await client.send("/start")
    series, rows = await weekly_for(bot, 1001)
    await assert_calendar_matches(bot)
    await bot.sweep()  # reads it back since our write
    delete_raw(anna_calendar(bot), f"{series.uid}.ics")
    before = len(client.messages)
    await bot.sweep()
    assert len(client.messages) == before  # missing once: nothing cancelled, nobody told
    async with bot.runtime.store.tx() as tx:
        assert {r.status for r in await tx.series_rows(series.id)} == {Status.CONFIRMED}
    bot.clock.advance(minutes=5)
    await bot.sweep()
    told = [m for m in client.messages[before:] if m.text]
    assert len(told) == 1  # one message for the whole change
    assert "cancelled visits of your recurring appointment" in told[0].text
    assert told[0].text.count("cancelled") >= len(rows)
    name, data = client.documents[-1]
    assert name == "appointments.ics"
    text = data.decode()
    assert "METHOD:CANCEL" in text and series.uid in text
    assert "Psychotherapy session with Anna Kowalska" in text and "Phone" not in text
    async with bot.runtime.store.tx() as tx:
        assert {r.status for r in await tx.series_rows(series.id)} == {Status.CANCELLED}
    assert await assert_calendar_matches(bot) == []
    assert bot.clock.now - timedelta(minutes=5) < rows[0].start


async def test_many_series_vanishing_at_once_ask_staff_then_clients_are_told_once_each(bot: Bot) -> None:
    from tests.fixtures.caldav import delete_raw

    made = []
    for i, hhmm in enumerate(("10:00", "12:00", "14:00")):
        person = bot.user(1001 + i, f"Client {i}")
        await person.send("/start")
        made.append((person, *await weekly_for(bot, 1001 + i, hhmm, count=3)))
    await assert_calendar_matches(bot)
    await bot.sweep()  # every series read back since our write
    for _person, series, _rows in made:
        delete_raw(anna_calendar(bot), f"{series.uid}.ics")
    await bot.sweep()
    bot.clock.advance(minutes=5)
    before = {person.id: len(person.messages) for person, _s, _r in made}
    await bot.sweep()
    alert = bot.anna.last
    assert "9 visits of Anna Kowalska are missing from the booking calendar." in alert.text
    assert all(len(person.messages) == before[person.id] for person, _s, _r in made)  # nobody told yet
    await bot.anna.tap("They were cancelled")
    await bot.emulator.wait_idle()
    for person, series, _rows in made:
        told = [m.text for m in person.messages[before[person.id] :] if m.text]
        assert len(told) == 1 and "cancelled visits of your recurring appointment" in told[0]
        name, data = person.documents[-1]
        assert name == "appointments.ics" and b"METHOD:CANCEL" in data and series.uid.encode() in data
    assert await assert_calendar_matches(bot) == []


async def test_a_client_moves_one_visit_of_a_series_from_my(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await client.send("/start")
    series, rows = await weekly_for(bot, 1001, "10:00", count=3)
    await assert_calendar_matches(bot)
    await client.send("/my")
    await client.tap("Show the visits of #1")
    await client.tap("Move #2")
    assert "Moving your appointment of Wednesday, December 9, 2026, 10:00" in client.last.text
    labels = [b for line in client.last.buttons for b in line]
    await client.tap("9" if "9" in labels else "(9)")
    await client.tap("14:00")
    if "On site" in [b for line in client.last.buttons for b in line]:
        await client.tap("On site")
    assert "Repeat every week" not in str(client.last.buttons)
    await client.tap("Ask to move it")
    await bot.emulator.wait_idle()
    seen = await assert_calendar_matches(bot)  # the asked-for time is held, the visit stays
    assert len(seen) == 4
    before = len(client.messages)
    await bot.anna.tap("Approve")
    await bot.emulator.wait_idle()
    told = [m.text for m in client.messages[before:] if m.text]
    assert len(told) == 1 and "moved as you asked" in told[0]
    name, data = client.documents[-1]
    assert name == "appointments.ics" and data.count(b"RECURRENCE-ID") == 1 and series.uid.encode() in data
    seen = await assert_calendar_matches(bot)
    assert [(uid, start.astimezone(WARSAW).strftime("%d.%m %H:%M")) for uid, start, _ in seen] == [
        (series.uid, "02.12 10:00"),
        (series.uid, "09.12 14:00"),
        (series.uid, "16.12 10:00"),
    ]
    async with bot.runtime.store.tx() as tx:
        assert (await tx.get_appointment(rows[1].id)).series_id == series.id
