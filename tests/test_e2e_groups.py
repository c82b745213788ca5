"""End to end: a group session of three seats through the real dialog. Four clients race for it (three get a seat,
the fourth is told the time was taken), the specialist approves the seats, one client cancels in /my and the fourth
takes the freed seat, the specialist marks who came per person on the card; the calendar holds one event for the
session whose expansion and participant list match the database at every step."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from icalendar import Calendar
from sqlalchemy import select

from scheduling.db import AppointmentRow, GroupRow
from scheduling.model import IN_CALENDAR, Status
from scheduling.privacy import initials
from tests.fixtures.bot import Bot, e2e_practice, running_bot, tap_through
from tests.fixtures.series import calendar_objects, expanded
from tests.test_e2e_calendar_edits import CalendarApp, later
from tests.test_e2e_series import anna_calendar
from tgemu import BotApiEmulator, TelegramUser

SESSION = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # Wednesday 2 December, 09:00 in Warsaw
NAMES = ("Ola Nowak", "Piotr Lis", "Ewa Kot", "Jan Wrona")


def with_group(data: dict[str, Any]) -> None:
    """Anna also runs a 90-minute group of three on site, in a category of its own."""
    data["services"].append(
        {
            "id": "group",
            "name": "Group therapy",
            "category": "Groups",
            "duration": 90,
            "start_every": 60,
            "channels": ["on_site"],
            "seats": 3,
        }
    )
    data["specialists"][0]["services"].append("group")


async def to_summary(client: TelegramUser, name: str, seats: int = 3) -> list[str]:
    """Walk a new client to the summary of the group on Wed 2 Dec 09:00; returns the times the picker showed."""
    await client.send("/start")
    await tap_through(client, "City centre office", "Groups", "2")
    times = [b for row in client.last.buttons for b in row]
    assert f"A group session of up to {seats} participants" in client.last.text
    await client.tap("09:00")
    await client.tap("Skip")  # no note
    await client.send(name)
    await client.share_contact("48601234567")
    await client.tap("Skip")
    await client.tap("I agree")
    assert "Please check your request" in client.last.text
    assert "Join every week from this date" in str(client.last.buttons)  # the weekly group, from this date
    return times


async def settle(bot: Bot) -> None:
    """Until every calendar write is done, whoever does it (the bot's own worker runs too)."""
    await bot.drain_calendar_writes()


async def assert_calendar_matches(bot: Bot) -> Calendar | None:
    """One event for the session while a seat is in the calendar, at its time, listing exactly those clients."""
    await settle(bot)
    async with bot.runtime.store.tx() as tx:
        seats = list((await tx.session.scalars(select(AppointmentRow))).all())
        [group] = (await tx.session.scalars(select(GroupRow))).all()
    present = [s for s in seats if s.status in IN_CALENDAR]
    server = anna_calendar(bot)
    assert expanded(server) == ([(group.uid, group.start, group.end)] if present else [])
    if not present:
        return None
    [event] = Calendar.from_ical(calendar_objects(server)[f"{group.uid}.ics"]).walk("VEVENT")
    listed = [line for line in str(event["DESCRIPTION"]).splitlines() if line.startswith("- ")]
    assert sorted(line[2:].split(";")[0] for line in listed) == sorted(initials(s.client.name) for s in present)
    return event


async def test_three_seats_raced_by_four_then_cancelled_rebooked_and_marked(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(with_group)) as bot:
        await bot.anna.send("/start")
        clients = [bot.user(6001 + i, name.split()[0]) for i, name in enumerate(NAMES)]
        shown = await asyncio.gather(*(to_summary(c, n) for c, n in zip(clients, NAMES, strict=True)))
        assert all("09:00 · 3 free" in times for times in shown)

        await asyncio.gather(*(c.tap("Send request", wait=False) for c in clients))
        await emulator.wait_idle(quiet=0.3)
        sent = [c for c in clients if "Your request has been sent" in c.last.text]
        refused = [c for c in clients if "this time was just taken" in c.last.text]
        assert len(sent) == 3 and len(refused) == 1
        times = [b for row in refused[0].last.buttons for b in row]
        assert not any(t.startswith("09:00") for t in times) and "11:00 · 3 free" in times
        requests = [m for m in bot.anna.messages if "New appointment request" in m.text]
        assert len(requests) == 3 and all("A seat in the group session" in m.text for m in requests)
        event = await assert_calendar_matches(bot)
        assert event is not None and str(event["STATUS"]) == "TENTATIVE"

        for _ in range(3):
            await bot.anna.tap("Approve")
        await emulator.wait_idle()
        assert all(any("Your appointment is confirmed" in m.text for m in c.messages) for c in sent)
        event = await assert_calendar_matches(bot)
        assert event is not None and str(event["STATUS"]) == "CONFIRMED"
        assert "Participants: 3 of 3" in str(event["DESCRIPTION"])

        # One client cancels in /my; the seat is free again and the fourth client takes it.
        leaving = sent[1]
        await leaving.send("/my")
        assert not any(b.startswith("Move") for row in leaving.last.buttons for b in row)
        await leaving.tap("Cancel #")
        await leaving.tap("Yes, cancel it")
        await emulator.wait_idle()
        assert any("cancelled" in m.text for m in leaving.messages[-3:])
        assert leaving.documents[-1][1].count(b"STATUS:CANCELLED") == 1  # the client's own copy goes
        event = await assert_calendar_matches(bot)
        assert event is not None and "Participants: 2 of 3" in str(event["DESCRIPTION"])

        late = refused[0]
        await late.send("/start")
        await tap_through(late, "City centre office", "Groups", "2")
        assert "09:00 · 1 free" in [b for row in late.last.buttons for b in row]
        await tap_through(late, "09:00", "Skip", "Send request")
        assert "Your request has been sent" in late.last.text
        await bot.anna.tap("Approve")
        await emulator.wait_idle()
        event = await assert_calendar_matches(bot)
        assert event is not None and "Participants: 3 of 3" in str(event["DESCRIPTION"])

        # After the session began: the card lists every participant, each marked on their own.
        bot.clock.now = SESSION + timedelta(minutes=95)
        async with bot.runtime.store.tx() as tx:
            seats = list((await tx.session.scalars(select(AppointmentRow).order_by(AppointmentRow.id))).all())
        first = seats[0]
        await bot.anna.send("/agenda")
        assert bot.anna.last.text.count("👥 ") == 3  # the three seats still booked, each marked a group seat
        await bot.anna.tap_data(f"k|c|{first.id}")
        card = bot.anna.last
        assert "Participants (3 of 3):" in card.text
        for seat in seats:
            assert f"#{seat.id} {seat.client.name}" in card.text
        assert "Move" not in str(card.buttons) and "Reassign" not in str(card.buttons)
        present = [s for s in seats if s.status == Status.CONFIRMED]
        came, missed = present[0].client.name, present[1].client.name
        await bot.anna.tap(f"{came}: came")
        await bot.anna.tap(f"{missed}: did not come")
        card = bot.anna.last
        assert f"#{first.id} " in card.text and "◀" in card.text  # still the card Anna opened
        async with bot.runtime.store.tx() as tx:
            marked = {a.client.name: a.status for a in (await tx.session.scalars(select(AppointmentRow))).all()}
        assert marked[came] == Status.COMPLETED and marked[missed] == Status.NO_SHOW
        assert marked[present[2].client.name] == Status.CONFIRMED
        assert f"{came}: came" not in str(card.buttons) and f"{present[2].client.name}: came" in str(card.buttons)
        # Attendance is history: the session stays in the calendar with everyone who had a seat.
        await assert_calendar_matches(bot)


def with_circle(data: dict[str, Any]) -> None:
    """A circle of two that confirms its requests itself."""
    with_group(data)
    data["services"][-1].update(seats=2, auto_approve=True)


async def test_auto_approve_confirms_a_seat_at_once_with_the_ics(tmp_path: Path, emulator: BotApiEmulator) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(with_circle)) as bot:
        await bot.anna.send("/start")
        client = bot.user(6101, "Ola")
        times = await to_summary(client, "Ola Nowak", seats=2)
        assert "09:00 · 2 free" in times
        await client.tap("Send request")
        await emulator.wait_idle()
        assert any("Your place is booked" in m.text for m in client.messages)
        assert any("Your appointment is confirmed" in m.text for m in client.messages)
        ((name, data),) = client.documents
        assert name.endswith(".ics") and b"STATUS:CONFIRMED" in data
        request = next(m for m in bot.anna.messages if "New appointment request" in m.text)
        assert "Status: confirmed" in request.text and not request.buttons  # nothing left to decide
        event = await assert_calendar_matches(bot)
        assert event is not None and str(event["STATUS"]) == "CONFIRMED"
        assert "Participants: 1 of 2" in str(event["DESCRIPTION"])


async def test_a_client_joins_the_weekly_group_and_the_specialist_approves_once(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(with_group)) as bot:
        await bot.anna.send("/start")
        client = bot.user(6201, "Ola")
        await to_summary(client, "Ola Nowak")
        await client.tap("Join every week from this date")
        assert "Repeats: every week at this time, 4 visits" in client.last.text
        await client.tap("Send request")
        await emulator.wait_idle()
        assert "Your request for 4 weekly visits has been sent" in client.last.text
        [request] = [m for m in bot.anna.messages if "New appointment request" in m.text]
        assert "Recurring: every week, 4 visits:" in request.text and request.buttons == [["Approve", "Decline"]]
        event = await assert_calendar_matches_weekly(bot, 4)
        assert all(str(e["STATUS"]) == "TENTATIVE" for e in event)
        await bot.anna.tap("Approve")
        await emulator.wait_idle()
        assert any("Your appointment is confirmed" in m.text for m in client.messages)
        event = await assert_calendar_matches_weekly(bot, 4)
        assert all(str(e["STATUS"]) == "CONFIRMED" for e in event)


async def assert_calendar_matches_weekly(bot: Bot, sessions: int) -> list[Calendar]:
    """One event per weekly session, each at its session's time, none recurring, matching the rows."""
    await settle(bot)
    async with bot.runtime.store.tx() as tx:
        groups = list((await tx.session.scalars(select(GroupRow))).all())
    server = anna_calendar(bot)
    assert expanded(server) == sorted((g.uid, g.start, g.end) for g in groups)
    assert len(groups) == sessions
    objects = calendar_objects(server)
    events = [Calendar.from_ical(objects[f"{g.uid}.ics"]).walk("VEVENT")[0] for g in groups]
    assert not any("RRULE" in e for e in events)
    return events


async def test_a_session_moved_then_deleted_in_the_calendar_app_reaches_every_participant(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(with_group)) as bot:
        await bot.anna.send("/start")
        ola, piotr = bot.user(6101, "Ola"), bot.user(6102, "Piotr")
        for client, name in ((ola, NAMES[0]), (piotr, NAMES[1])):
            await to_summary(client, name)
            await client.tap("Send request")
            await bot.anna.tap("Approve")
        await emulator.wait_idle()
        await piotr.send("/language")
        await piotr.tap("Polski")  # told in their own language from now on
        await assert_calendar_matches(bot)
        await bot.sweep()  # a read shows the event as we wrote it: from now on its absence means something
        async with bot.runtime.store.tx() as tx:
            [group] = (await tx.session.scalars(select(GroupRow))).all()

        await CalendarApp(bot).edit(group.uid, later(hours=2))
        await bot.sweep()
        await settle(bot)
        await bot.sweep()  # our own rewrite of the event is not mistaken for another move
        moved_to = SESSION + timedelta(hours=2)
        for client, text in ((ola, "moved your appointment"), (piotr, "przeniósł wizytę")):
            told = [m for m in client.messages if text in m.text]
            assert len(told) == 1 and "11:00" in told[0].text
            (_, latest), *_ = reversed(client.documents)
            event = Calendar.from_ical(latest).walk("VEVENT")[0]
            assert event.decoded("DTSTART").astimezone(UTC) == moved_to
        async with bot.runtime.store.tx() as tx:
            seats = list((await tx.session.scalars(select(AppointmentRow))).all())
        assert {(s.start, s.status) for s in seats} == {(moved_to, Status.CONFIRMED)}
        event = await assert_calendar_matches(bot)  # a fresh read equals the rows: one event, at 11:00
        assert event is not None and event.decoded("DTSTART").astimezone(UTC) == moved_to

        told = (len(ola.messages), len(piotr.messages))
        await CalendarApp(bot).delete(group.uid)
        await bot.sweep()  # one read without it proves nothing
        async with bot.runtime.store.tx() as tx:
            assert {s.status for s in (await tx.session.scalars(select(AppointmentRow))).all()} == {Status.CONFIRMED}
        assert (len(ola.messages), len(piotr.messages)) == told
        bot.clock.advance(minutes=6)
        await bot.sweep()
        await bot.sweep()
        for client, text in ((ola, "had to cancel your appointment"), (piotr, "musiał odwołać wizytę")):
            assert len([m for m in client.messages if text in m.text]) == 1
            assert client.documents[-1][1].count(b"STATUS:CANCELLED") == 1
        async with bot.runtime.store.tx() as tx:
            assert {s.status for s in (await tx.session.scalars(select(AppointmentRow))).all()} == {Status.CANCELLED}
        assert await assert_calendar_matches(bot) is None
