"""End to end: what a specialist changes in their own calendar app flows back to the appointment and the client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from icalendar import Calendar

from bot import notify
from tests.fixtures.bot import CENTRE_FIRST_CONSULTATION, Bot, tap_through
from tests.test_e2e_booking import _appointment, book_first_consultation, calendar_status


def later(hours: int) -> Callable[[Any], None]:
    """An edit that moves an event by `hours`, as a specialist dragging it in their calendar app would."""

    def shift(event: Any) -> None:
        for name in ("DTSTART", "DTEND"):
            moved = event.decoded(name) + timedelta(hours=hours)
            del event[name]
            event.add(name, moved)

    return shift


class CalendarApp:
    """The specialist's own calendar app: plain CalDAV requests, none of the bot's code."""

    def __init__(self, bot: Bot, specialist: str = "anna"):
        account = bot.runtime.accounts[specialist]
        self.base = account.calendar_url
        self.auth = (account.username, account.password)

    async def edit(self, uid: str, change) -> None:  # type: ignore[no-untyped-def]
        async with httpx.AsyncClient(auth=self.auth) as http:
            got = await http.get(f"{self.base}{uid}.ics")
            got.raise_for_status()
            cal = Calendar.from_ical(got.text)
            change(cal.walk("VEVENT")[0])
            put = await http.put(
                f"{self.base}{uid}.ics",
                content=cal.to_ical(),
                headers={"If-Match": got.headers["ETag"], "Content-Type": "text/calendar; charset=utf-8"},
            )
            put.raise_for_status()

    async def delete(self, uid: str) -> None:
        async with httpx.AsyncClient(auth=self.auth) as http:
            (await http.delete(f"{self.base}{uid}.ics")).raise_for_status()


async def booked(bot: Bot, telegram_id: int, *, approve: bool = True):  # type: ignore[no-untyped-def]
    client = bot.user(telegram_id, "Client")
    await book_first_consultation(client, note=None)
    if approve:
        await bot.anna.tap("Approve")
    appt = await _appointment(bot, telegram_id)
    await calendar_status(bot, "anna", appt.uid, want="CONFIRMED" if approve else "TENTATIVE")
    for _ in range(200):  # the write is on the server; wait until the outbox has recorded it too
        async with bot.runtime.store.tx() as tx:
            if not await tx.outbox_pending():
                break
        await asyncio.sleep(0.05)
    await bot.sweep()  # a read shows the event as we wrote it: from now on its absence means something
    return client, appt


async def missing_twice(bot: Bot) -> None:
    """Two reads some minutes apart that miss the event: only the second one acts."""
    await bot.sweep()
    bot.clock.advance(minutes=6)
    await bot.sweep()


async def test_an_event_moved_in_the_calendar_moves_the_appointment(bot: Bot) -> None:
    client, appt = await booked(bot, 8001)

    await CalendarApp(bot).edit(appt.uid, later(hours=2))
    await bot.sweep()
    moved = await _appointment(bot, 8001)
    assert moved.start == appt.start + timedelta(hours=2) and moved.status == "confirmed"
    assert moved.sequence > appt.sequence
    told = [m for m in client.messages if "moved your appointment" in m.text]
    assert told and "11:00" in told[-1].text
    (_, latest), *_ = reversed(client.documents)
    event = Calendar.from_ical(latest).walk("VEVENT")[0]
    assert event.decoded("DTSTART") == moved.start.astimezone(event.decoded("DTSTART").tzinfo)
    await bot.drain_outbox()
    await bot.sweep()  # our own rewrite of the event is not mistaken for another move
    assert len([m for m in client.messages if "moved your appointment" in m.text]) == 1


async def test_a_confirmed_event_deleted_in_the_calendar_cancels_the_appointment(bot: Bot) -> None:
    client, appt = await booked(bot, 8002)
    told = len(client.messages)
    await CalendarApp(bot).delete(appt.uid)
    await bot.sweep()
    assert (await _appointment(bot, 8002)).status == "confirmed"  # one read is not enough
    assert len(client.messages) == told
    bot.clock.advance(minutes=6)
    await bot.sweep()
    assert (await _appointment(bot, 8002)).status == "cancelled"
    assert "had to cancel your appointment" in client.last.text
    assert client.last.buttons == [["Choose another time"]]


async def test_a_request_deleted_in_the_calendar_is_declined(bot: Bot) -> None:
    client, appt = await booked(bot, 8003, approve=False)
    await CalendarApp(bot).delete(appt.uid)
    await missing_twice(bot)
    assert (await _appointment(bot, 8003)).status == "declined"
    assert "could not be accepted" in client.last.text
    assert bot.anna.last.buttons == []  # the specialist's Approve / Decline went away


async def test_marking_the_event_free_or_a_dead_server_changes_nothing(bot: Bot) -> None:
    client, appt = await booked(bot, 8004)
    told = len(client.messages)
    await CalendarApp(bot).edit(appt.uid, lambda event: event.add("TRANSP", "TRANSPARENT"))
    await bot.sweep()
    assert (await _appointment(bot, 8004)).status == "confirmed"

    server = bot.runtime.embedded
    assert server is not None
    await server.stop()
    await missing_twice(bot)
    assert (await _appointment(bot, 8004)).status == "confirmed"
    assert len(client.messages) == told  # the client was told nothing


async def test_two_sweeps_at_once_carry_each_change_once(bot: Bot) -> None:
    """Two processes sweeping at the same moment: each change happens and is told once, and nothing fails."""
    deleted_client, deleted = await booked(bot, 8005)
    await CalendarApp(bot).delete(deleted.uid)
    await bot.sweep()  # the first read that misses it
    overdue_client = bot.user(8006, "Client")
    await overdue_client.send("/book")
    await tap_through(overdue_client, *CENTRE_FIRST_CONSULTATION, "Anna Kowalska", "2", "10:00", "On site", "Skip")
    await overdue_client.send("Ola Nowak")
    await overdue_client.share_contact("48601234568")
    await tap_through(overdue_client, "Skip", "I agree", "Send request")
    bot.clock.advance(hours=24, minutes=1)  # the second request is now past its approval timeout too

    await asyncio.gather(*(notify.sweep(bot.app.bot, bot.runtime.deps) for _ in range(2)))
    await bot.emulator.wait_idle()
    assert (await _appointment(bot, 8005)).status == "cancelled"
    assert (await _appointment(bot, 8006)).status == "expired"
    assert len([m for m in deleted_client.messages if "had to cancel" in m.text]) == 1
    assert len([m for m in overdue_client.messages if "did not answer your request in time" in m.text]) == 1
