"""End to end: a specialist moves and cancels visits of a series from the appointment card by scope (this visit,
this and the following, the whole series), over the real Application, the emulator and a real Radicale. Every step
ends with a fresh read of the calendar: what recurring-ical-events expands equals the rows, at the expected local
times, also across a DST change; the client is told once per change, with one .ics of the new state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from icalendar import Calendar

from scheduling.model import Channel, Status
from scheduling.series import SeriesRequest
from tests.fixtures.bot import Bot, Clock, running_bot
from tests.test_e2e_booking import book_first_consultation
from tests.test_e2e_series import assert_calendar_matches, dentist
from tgemu import BotApiEmulator, TelegramUser

WARSAW = ZoneInfo("Europe/Warsaw")


def local(moment: datetime) -> str:
    return moment.astimezone(WARSAW).strftime("%d.%m %H:%M")


async def weekly(bot: Bot, day: str, hhmm: str, count: int, telegram_id: int = 1001):  # type: ignore[no-untyped-def]
    """A confirmed weekly series of Psychotherapy with Anna from a Wednesday, for a client who uses the bot."""
    client = bot.user(telegram_id, "Jan")
    await client.send("/start")
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(telegram_id)
    start = datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=WARSAW)
    req = SeriesRequest(row.id, "therapy", "centre", "anna", Channel.ON_SITE, start, count=count)
    series, rows = await bot.runtime.deps.series.create(req, actor="specialist:9001", confirmed=True)
    await assert_calendar_matches(bot)
    return client, series, rows


async def tap_day(anna: TelegramUser, day: int) -> None:
    labels = [b for row in anna.last.buttons for b in row]
    await anna.tap(str(day) if str(day) in labels else f"({day})")


async def pick_time(anna: TelegramUser, hhmm: str) -> None:
    if hhmm in [b for row in anna.last.buttons for b in row]:
        await anna.tap(hhmm)
    else:
        await anna.send(hhmm)


async def local_times(bot: Bot) -> list[str]:
    """The fresh calendar read, as local 'dd.mm HH:MM' (checked equal to the rows first)."""
    return [local(start) for start in sorted(start for _uid, start, _end in await assert_calendar_matches(bot))]


def client_news(client: TelegramUser, before: int) -> list[str]:
    return [m.text for m in client.messages[before:] if m.text]


async def test_move_this_and_following_from_the_card_splits_the_series(bot: Bot) -> None:
    client, _series, rows = await weekly(bot, "2026-12-02", "10:00", 5)
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[2].id}")
    assert "↻ Recurring (every week): visit 3 of 5." in anna.last.text
    labels = [b for row in anna.last.buttons for b in row]
    assert "Move" in labels and "Cancel visit" in labels and "Reassign" not in labels
    await anna.tap("Move")
    assert "Move which visits?" in anna.last.text
    await anna.tap("This and the following")
    await tap_day(anna, 16)
    await pick_time(anna, "12:00")
    summary = anna.last.text
    assert "Move 3 visits (this and the following)?" in summary and "All 3 dates are free." in summary
    before = len(client.messages)
    await anna.tap("Move")
    assert "Moved." in anna.last.text
    await bot.emulator.wait_idle()
    [told] = client_news(client, before)  # one message for the whole change
    assert told.count("→") == 3 and "changed your recurring visits" in told
    name, data = client.documents[-1]
    masters = [c for c in Calendar.from_ical(data).walk("VEVENT") if "RECURRENCE-ID" not in c]
    assert name == "appointments.ics" and len(masters) == 2  # the old series (ended) and the new one
    assert {str(m["SUMMARY"]) for m in masters} == {"Psychotherapy session with Anna Kowalska"}
    assert await local_times(bot) == ["02.12 10:00", "09.12 10:00", "16.12 12:00", "23.12 12:00", "30.12 12:00"]
    assert len({uid for uid, _s, _e in await assert_calendar_matches(bot)}) == 2


async def test_move_this_visit_only_like_a_single_visit_with_move_anyway(bot: Bot) -> None:
    client, series, rows = await weekly(bot, "2026-12-02", "11:00", 4)
    dentist(bot)  # Wednesday 16 December 09:00-10:00
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[2].id}")
    await anna.tap("Move")
    await anna.tap("This visit only")
    await tap_day(anna, 16)
    await pick_time(anna, "09:00")
    text = anna.last.text
    assert "It collides with a private event in the calendar." in text and "Dentist" not in text
    await anna.send("Room change")  # the reason for the client
    before = len(client.messages)
    await anna.tap("Move anyway")
    assert "saved despite: collides with a private event" in anna.last.text
    await bot.emulator.wait_idle()
    [told] = client_news(client, before)
    assert "Reason: Room change" in told and told.count("→") == 1
    name, data = client.documents[-1]
    assert name == "appointments.ics" and data.count(b"RECURRENCE-ID") == 1
    assert await local_times(bot) == ["02.12 11:00", "09.12 11:00", "16.12 09:00", "23.12 11:00"]
    text = (await anna_calendar_text(bot, series.uid)) or ""
    assert text.count("RECURRENCE-ID") == 1  # one override in the same resource


async def test_move_this_visit_onto_another_appointment_is_blocked(bot: Bot) -> None:
    _client, _series, rows = await weekly(bot, "2026-12-02", "11:00", 3)
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[0].id}")
    await anna.tap("Move")
    await anna.tap("This visit only")
    await tap_day(anna, 9)
    await pick_time(anna, "11:30")
    assert "It collides with another appointment: ↻ Psychotherapy session" in anna.last.text
    assert next(b for line in anna.last.buttons for b in line) == "Choose another time"
    assert await local_times(bot) == ["02.12 11:00", "09.12 11:00", "16.12 11:00"]


async def anna_calendar_text(bot: Bot, uid: str) -> str | None:
    from tests.test_e2e_workspace import event_text

    return await event_text(bot, "anna", uid)


async def test_following_with_a_collision_skips_that_date(bot: Bot) -> None:
    client, _series, rows = await weekly(bot, "2026-12-02", "11:00", 4)
    dentist(bot)  # Wednesday 16 December 09:00-10:00
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[1].id}")
    await anna.tap("Move")
    await anna.tap("This and the following")
    await tap_day(anna, 9)
    await pick_time(anna, "09:00")
    assert "1 of 3 dates collide: 16 Dec, a private event" in anna.last.text
    before = len(client.messages)
    await anna.tap("Skip those dates")
    assert "Moved." in anna.last.text
    await bot.emulator.wait_idle()
    [told] = client_news(client, before)
    assert told.count("→") == 2 and "cancelled" in told
    assert await local_times(bot) == ["02.12 11:00", "09.12 09:00", "23.12 09:00"]
    async with bot.runtime.store.tx() as tx:
        statuses = [r.status for r in await tx.client_appointments(rows[0].client_id)]
    assert statuses.count(Status.CANCELLED) == 1


async def test_cancel_the_whole_series_from_the_card(bot: Bot) -> None:
    client, series, rows = await weekly(bot, "2026-12-02", "13:00", 3)
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[1].id}")
    await anna.tap("Cancel visit")
    assert "Cancel which visits?" in anna.last.text
    await anna.tap("The whole series")
    assert "Cancel 3 visits (the whole series)?" in anna.last.text
    before = len(client.messages)
    await anna.tap("Cancel these visits")
    assert "Cancelled." in anna.last.text
    await bot.emulator.wait_idle()
    [told] = client_news(client, before)
    assert told.count("cancelled") >= 3
    _name, data = client.documents[-1]
    assert b"METHOD:CANCEL" in data and series.uid.encode() in data
    assert await local_times(bot) == []


async def test_cancel_this_visit_only_without_telling_the_client(bot: Bot) -> None:
    client, series, rows = await weekly(bot, "2026-12-02", "13:00", 3)
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[0].id}")
    await anna.tap("Cancel visit")
    await anna.tap("This visit only")
    assert "Cancel 1 visits (this visit only)?" in anna.last.text
    await anna.tap("Tell the client")
    before = len(client.messages)
    await anna.tap("Cancel these visits")
    await bot.emulator.wait_idle()
    assert client_news(client, before) == []
    assert await local_times(bot) == ["09.12 13:00", "16.12 13:00"]
    # Later the specialist sends the client's file: the series as it now stands, the first date left out.
    files = len(client.documents)
    await anna.tap_data(f"k|c|{rows[1].id}")
    await anna.tap("Send the .ics again")
    await bot.emulator.wait_idle()
    assert len(client.documents) == files + 1
    name, data = client.documents[-1]
    master = next(c for c in Calendar.from_ical(data).walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert name == "appointments.ics" and "EXDATE" in master and str(master["UID"]) == series.uid


# Monday 09:00 in Warsaw, and the Wednesday two days later; the clocks change within the fortnight after it.
SEASONS = {
    "spring": (datetime(2027, 3, 15, 8, 0, tzinfo=UTC), date(2027, 3, 17)),  # forward on Sunday 28 March
    "autumn": (datetime(2027, 10, 18, 7, 0, tzinfo=UTC), date(2027, 10, 20)),  # back on Sunday 31 October
}


@dataclass
class Season:
    bot: Bot
    wednesday: date

    def week(self, n: int) -> date:
        return self.wednesday + timedelta(weeks=n)

    def labels(self, hhmm: str, weeks: range) -> list[str]:
        return [f"{self.week(n).strftime('%d.%m')} {hhmm}" for n in weeks]


@pytest_asyncio.fixture(params=list(SEASONS))
async def season(request: pytest.FixtureRequest, tmp_path: Path, emulator: BotApiEmulator) -> AsyncIterator[Season]:
    """The bot a fortnight before a DST change, spring and autumn in turn."""
    now, wednesday = SEASONS[request.param]
    async with running_bot(tmp_path, emulator, clock=Clock(now)) as b:
        await b.anna.send("/start")
        yield Season(b, wednesday)


async def test_moves_across_a_clock_change_keep_local_times(season: Season) -> None:
    bot = season.bot
    client, series, rows = await weekly(bot, season.wednesday.isoformat(), "10:00", 5)
    assert await local_times(bot) == season.labels("10:00", range(5))
    anna = bot.anna
    await anna.tap_data(f"k|c|{rows[1].id}")
    await anna.tap("Move")
    await anna.tap("The whole series")
    await tap_day(anna, season.week(1).day)
    await pick_time(anna, "15:00")
    assert "Move 5 visits (the whole series)?" in anna.last.text
    await anna.tap("Move")
    await bot.emulator.wait_idle()
    assert await local_times(bot) == season.labels("15:00", range(5))
    await anna.tap_data(f"k|c|{rows[3].id}")
    await anna.tap("Cancel visit")
    await anna.tap("This and the following")
    await anna.tap("Cancel these visits")
    await bot.emulator.wait_idle()
    assert await local_times(bot) == season.labels("15:00", range(3))
    offsets = [start.astimezone(WARSAW).utcoffset() for _uid, start, _end in await assert_calendar_matches(bot)]
    assert len(set(offsets)) == 2  # the same 15:00 on both sides of the change
    text = await anna_calendar_text(bot, series.uid)
    assert text is not None and "UNTIL=" in text and "TZID=Europe/Warsaw" in text
    assert len(client.documents) == 2  # one .ics per change


async def test_new_weekly_visits_across_a_clock_change(season: Season) -> None:
    bot = season.bot
    anna = bot.anna
    await new_weekly_for_new_client(anna, day=season.week(1).day, hhmm="16:00", next_month=False)
    await anna.tap("Every week")
    await anna.tap("6")
    await anna.tap("Continue")
    assert "All 6 dates are free." in anna.last.text
    await anna.tap("Save")
    assert "Saved." in anna.last.text
    assert await local_times(bot) == season.labels("16:00", range(1, 7))


async def new_weekly_for_new_client(anna: TelegramUser, *, day: int, hhmm: str, next_month: bool = True) -> None:
    """/new for Ewa, whom the practice enters itself: Psychotherapy at the centre, on site, at that day and time."""
    await anna.send("/new")
    await anna.tap("+ New client")
    await anna.send("Ewa Zielińska")
    await anna.send("+48 601 555 444")
    await anna.tap("Skip")
    await anna.tap("Psychotherapy session")
    await anna.tap("City centre office")
    if "On site" in [b for row in anna.last.buttons for b in row]:
        await anna.tap("On site")
    if next_month:
        await anna.tap("›")
    await tap_day(anna, day)
    await pick_time(anna, hhmm)


async def test_new_visit_repeating_weekly_with_a_colliding_date_skipped(bot: Bot) -> None:
    dentist(bot)  # Wednesday 16 December 09:00-10:00
    anna = bot.anna
    await new_weekly_for_new_client(anna, day=2, hhmm="09:00")
    assert "Repeats: no." in anna.last.text
    await anna.tap("First consultation")  # the flag, on every visit of the course
    await anna.tap("Every week")
    assert "Repeats: every week, 4 visits." in anna.last.text
    await anna.tap("Continue")
    text = anna.last.text
    assert "Please check the visits:" in text and text.count("• ") == 4
    assert "1 of 4 dates collide: 16 Dec, a private event" in text and "Dentist" not in text
    labels = [b for row in anna.last.buttons for b in row]
    assert "Save" not in labels and "Skip those dates and save" in labels
    await anna.tap("Skip those dates and save")
    card = anna.last.text
    assert "Saved." in card and "↻ Recurring (every week): visit 1 of 3." in card
    assert "does not use the bot" in card
    assert await local_times(bot) == ["02.12 09:00", "09.12 09:00", "23.12 09:00"]
    async with bot.runtime.store.tx() as tx:
        (client,) = await tx.find_clients("Zielińska")
        appts = await tx.client_appointments(client.id)
    assert [a.status for a in appts] == [Status.CONFIRMED] * 3
    assert {a.source for a in appts} == {"staff"} and {a.flags for a in appts} == {"first"}


async def test_nothing_is_saved_when_the_specialist_gives_up(bot: Bot) -> None:
    dentist(bot)
    anna = bot.anna
    await new_weekly_for_new_client(anna, day=2, hhmm="09:00")
    await anna.tap("Every week")
    await anna.tap("Continue")
    assert "1 of 4 dates collide" in anna.last.text
    await anna.tap("Cancel")
    assert "Nothing was saved" in anna.last.text
    assert await local_times(bot) == []


async def test_new_visit_every_two_weeks_until_a_date_for_a_bot_client(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)  # Jan Nowak, Wed 2 Dec 09:00, requested
    anna = bot.anna
    await anna.send("/new")
    await anna.send("Nowak")
    await anna.tap("Jan Nowak")
    await anna.tap("Psychotherapy session")
    await anna.tap("City centre office")
    await anna.tap("On site")
    await anna.tap("›")
    await tap_day(anna, 9)
    await pick_time(anna, "14:00")
    await anna.tap("Every 2 weeks")
    await anna.send("20.01.2027")
    assert "Repeats: every 2 weeks, until Wednesday, January 20, 2027." in anna.last.text
    await anna.tap("Continue")
    assert "All 4 dates are free." in anna.last.text
    before = len(client.messages)
    await anna.tap("Save")
    await bot.emulator.wait_idle()
    [told] = client_news(client, before)
    assert "Recurring: every 2 weeks, 4 visits:" in told
    name, data = client.documents[-1]
    master = next(c for c in Calendar.from_ical(data).walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert name == "appointments.ics" and "INTERVAL=2" in master["RRULE"].to_ical().decode()
    assert str(master["SUMMARY"]) == "Psychotherapy session with Anna Kowalska"
    times = await local_times(bot)
    assert times == ["02.12 09:00", "09.12 14:00", "23.12 14:00", "06.01 14:00", "20.01 14:00"]


async def test_a_clients_request_approved_as_a_weekly_course(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)  # Jan Nowak, Wed 2 Dec 09:00, requested
    await bot.drain_outbox()
    dentist(bot)  # Wednesday 16 December 09:00-10:00
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1001)
        (request,) = await tx.client_appointments(row.id)
    anna = bot.anna
    await anna.tap_data(f"k|c|{request.id}")
    await anna.tap("Approve as recurring")
    assert "Repeats: every week, 4 visits." in anna.last.text
    await anna.tap("6")
    await anna.tap("Continue")
    text = anna.last.text
    assert text.count("• ") == 6 and "1 of 6 dates collide: 16 Dec, a private event" in text
    before = len(client.messages)
    await anna.tap("Skip those dates and save")
    assert "Approved." in anna.last.text and "visit 1 of 5" in anna.last.text
    await bot.emulator.wait_idle()
    told = client_news(client, before)
    assert len(told) == 1 and "Recurring: every week, 5 visits:" in told[0]
    name, data = client.documents[-1]
    master = next(c for c in Calendar.from_ical(data).walk("VEVENT") if "RECURRENCE-ID" not in c)
    assert name == "appointments.ics" and str(master["UID"]) == request.uid
    # The request's own event became the recurring one: the same resource, no duplicate of the first visit.
    assert await local_times(bot) == ["02.12 09:00", "09.12 09:00", "23.12 09:00", "30.12 09:00", "06.01 09:00"]
    assert {uid for uid, _s, _e in await assert_calendar_matches(bot)} == {request.uid}
    async with bot.runtime.store.tx() as tx:
        assert {a.status for a in await tx.client_appointments(row.id)} == {Status.CONFIRMED}
    request_message = next(m for m in anna.messages if "Recurring: every week, 5 visits" in m.text)
    assert request_message.buttons == []


async def test_find_and_the_client_record_show_a_series_on_one_line(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)  # Jan Nowak, Wed 2 Dec 09:00, requested
    _client, series, rows = await weekly(bot, "2026-12-02", "13:00", 6)
    anna = bot.anna
    await anna.send("/find Nowak")
    text = anna.last.text
    assert text.count("↻") == 1 and "series: 6 upcoming of 6 visits" in text
    assert "2 December 2026, 13:00" in text or "December 2, 2026, 13:00" in text  # the next visit
    assert ["#2 Jan Nowak", "Show all of #2"] in anna.last.buttons
    await anna.tap("Show all of #2")
    record = anna.last.text
    assert "Client record" in record and record.count("↻") == 6 and "series:" not in record
    # /new at a time a series visit holds names it as a visit of a series, and blocks.
    await anna.send("/new")
    await anna.send("Nowak")
    await anna.tap("Jan Nowak")
    await anna.tap("First consultation")
    await anna.tap("City centre office")
    await anna.tap("On site")
    await anna.tap("›")
    await tap_day(anna, 9)
    await pick_time(anna, "13:30")
    await anna.tap("Continue")
    assert "It collides with another appointment: ↻ Psychotherapy session, Jan Nowak" in anna.last.text
    assert len(rows) == 6 and series.uid


async def test_a_requested_series_is_approved_whole_from_the_card(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await client.send("/start")
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1001)
    start = datetime(2026, 12, 2, 15, 0, tzinfo=WARSAW)
    req = SeriesRequest(row.id, "therapy", "centre", "anna", Channel.ON_SITE, start, count=3)
    _series, rows = await bot.runtime.deps.series.create(req, actor=f"client:{row.id}", confirmed=False)
    await bot.sweep()  # the request goes to Anna, once for the whole series
    await bot.anna.tap_data(f"k|c|{rows[1].id}")
    labels = [b for line in bot.anna.last.buttons for b in line]
    assert "Approve" in labels and "Approve as recurring" not in labels
    before = len(client.messages)
    await bot.anna.tap("Approve")
    await bot.emulator.wait_idle()
    async with bot.runtime.store.tx() as tx:
        assert {a.status for a in await tx.client_appointments(row.id)} == {Status.CONFIRMED}
    told = client_news(client, before)
    assert len(told) == 1 and "Recurring: every week, 3 visits:" in told[0]
    assert await local_times(bot) == ["02.12 15:00", "09.12 15:00", "16.12 15:00"]
