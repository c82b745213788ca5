"""End to end: what the client receives — video links, their own .ics and the CANCEL .ics, e-mail by SMTP."""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar

from tests.fixtures.bot import Bot, e2e_practice, running_bot, tap_through
from tests.fixtures.caldav import free_port
from tests.test_e2e_booking import _appointment, calendar_status
from tgemu import BotApiEmulator, TelegramUser

ROOM = "https://meet.example.org/harbour-{appointment}"


async def book(client: TelegramUser, channel: str = "On site", email_address: str | None = None) -> None:
    """Centre, first consultation with Anna, Wednesday 2 December 09:00, by the given channel."""
    await client.send("/book")
    await tap_through(client, "City centre office", "Individual", "First consultation", "Anna Kowalska", "2")
    await tap_through(client, "09:00", channel, "Skip")
    await client.send("Jan Nowak")
    await client.share_contact("48601234567")
    if email_address:
        await client.send(email_address)
    else:
        await client.tap("Skip")
    await tap_through(client, "I agree", "Send request")


def event_of(data: bytes) -> tuple[Calendar, Any]:
    cal = Calendar.from_ical(data)
    return cal, cal.walk("VEVENT")[0]


def _with_room(data: dict[str, Any]) -> None:
    data["specialists"][0]["video_link"] = ROOM


async def test_a_video_link_reaches_the_confirmation_the_reminder_the_ics_and_the_calendar(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(_with_room)) as bot:
        await bot.anna.send("/start")
        client = bot.user(7201, "Jan")
        await book(client, "Video call")
        await bot.anna.tap("Approve")
        appt = await _appointment(bot, 7201)
        room = ROOM.replace("{appointment}", "bb" + appt.uid.split("@")[0][:24])
        confirmation = next(m.text for m in client.messages if "Your appointment is confirmed" in m.text)
        assert f"Video link: {room}" in confirmation
        assert "arrive five minutes early" not in confirmation  # the instructions are for visits on site
        _, event = event_of(client.documents[-1][1])
        assert str(event["URL"]) == room and str(event["CONFERENCE"]) == room
        assert event["CONFERENCE"].params["VALUE"] == "URI"
        # The specialist's calendar event carries it too.
        await calendar_status(bot, "anna", appt.uid, want="CONFIRMED")
        account = bot.runtime.accounts["anna"]
        async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
            stored = (await http.get(account.calendar_url.rstrip("/") + f"/{appt.uid}.ics")).text
        assert str(event_of(stored.encode())[1]["URL"]) == room
        bot.clock.advance(days=1, hours=1, minutes=5)  # inside 24 hours before the visit
        await bot.sweep()
        reminder = next(m.text for m in client.messages if "A reminder of your appointment" in m.text)
        assert f"Video link: {room}" in reminder


async def test_without_a_link_the_specialist_is_asked_to_send_one(bot: Bot) -> None:
    client = bot.user(7202, "Jan")
    await book(client, "Video call")
    await bot.anna.tap("Approve")
    confirmation = next(m.text for m in client.messages if "Your appointment is confirmed" in m.text)
    assert "will send you the video link here" in confirmation
    assert any("please send the client a link" in m.text for m in bot.anna.messages)


async def test_a_phone_visit_says_the_specialist_will_call(bot: Bot) -> None:
    client = bot.user(7203, "Jan")
    await book(client, "Phone call")
    await bot.anna.tap("Approve")
    confirmation = next(m.text for m in client.messages if "Your appointment is confirmed" in m.text)
    assert "will call you at the number you gave: +48601234567" in confirmation


async def test_the_clients_ics_is_theirs_and_a_cancellation_removes_it(bot: Bot) -> None:
    client = bot.user(7204, "Jan")
    await book(client)
    await bot.anna.tap("Approve")
    appt = await _appointment(bot, 7204)
    cal, event = event_of(client.documents[-1][1])
    assert str(cal["METHOD"]) == "PUBLISH" and str(event["UID"]) == appt.uid
    assert str(event["SUMMARY"]) == "First consultation with Anna Kowalska"
    description = str(event["DESCRIPTION"])
    assert "Harbour Counselling" in description and "Anna Kowalska" in description
    assert "ul. Długa 12/4" in str(event["LOCATION"])
    assert b"48601234567" not in client.documents[-1][1] and b"Jan Nowak" not in client.documents[-1][1]
    first_sequence = int(event["SEQUENCE"])

    await client.send("/my")
    await client.tap("Cancel #1")
    await client.tap("Yes, cancel it")
    cal, event = event_of(client.documents[-1][1])
    assert str(cal["METHOD"]) == "CANCEL" and str(event["UID"]) == appt.uid
    assert str(event["STATUS"]) == "CANCELLED" and int(event["SEQUENCE"]) > first_sequence
    assert b"48601234567" not in client.documents[-1][1]


async def test_a_polish_clients_ics_is_in_polish(bot: Bot) -> None:
    client = bot.user(7205, "Zosia", lang="pl")
    await client.send("/book")
    await tap_through(client, "City centre office", "Indywidualne")
    label = next(b for row in client.last.buttons for b in row if b.startswith("Pierwsza konsultacja"))
    await tap_through(client, label, "Anna Kowalska", "2", "09:00")
    await client.tap(client.last.buttons[0][0])  # the first channel, on site
    await client.tap(client.last.buttons[0][0])  # skip the note
    await client.send("Zofia Nowak")
    await client.share_contact("48601234567")
    await client.tap(client.last.buttons[0][0])  # no e-mail
    await client.tap(client.last.buttons[0][0])  # consent
    await client.tap(client.last.buttons[0][0])  # send
    await bot.anna.tap("Approve")
    _, event = event_of(client.documents[-1][1])
    assert str(event["SUMMARY"]).startswith("Pierwsza konsultacja")


class Inbox:
    """What a local SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_an_email_with_the_ics_reaches_the_smtp_server(
    tmp_path: Path, emulator: BotApiEmulator, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    settings = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none", "smtp_from": "bot@example.org"}
    async with running_bot(tmp_path, emulator, settings_extra=settings) as bot:
        await bot.anna.send("/start")
        client = bot.user(7206, "Jan")
        await book(client, email_address="jan@example.org")
        await bot.anna.tap("Approve")
        for _ in range(100):
            if inbox.messages:
                break
            await asyncio.sleep(0.05)
        (mail,) = inbox.messages
        assert mail["To"] == "jan@example.org" and mail["From"] == "bot@example.org"
        assert "confirmed" in mail["Subject"]
        parts = {part.get_content_type(): part for part in mail.walk()}
        assert "Your appointment is confirmed" in parts["text/plain"].get_payload(decode=True).decode()
        ics = parts["text/calendar"].get_payload(decode=True)
        appt = await _appointment(bot, 7206)
        assert str(event_of(ics)[1]["UID"]) == appt.uid

        await client.send("/my")
        await client.tap("Cancel #1")
        await client.tap("Yes, cancel it")
        for _ in range(100):
            if len(inbox.messages) == 2:
                break
            await asyncio.sleep(0.05)
        cancel = inbox.messages[1]
        assert "cancelled" in cancel["Subject"]
        ics = next(p for p in cancel.walk() if p.get_content_type() == "text/calendar").get_payload(decode=True)
        assert str(Calendar.from_ical(ics)["METHOD"]) == "CANCEL"


async def test_without_smtp_nothing_is_emailed(bot: Bot) -> None:
    assert bot.runtime.mailer is None
    client = bot.user(7207, "Jan")
    await book(client, email_address="jan@example.org")
    await bot.anna.tap("Approve")
    assert any("Your appointment is confirmed" in m.text for m in client.messages)
