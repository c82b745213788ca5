"""End to end: a client books through the real Application, the specialist decides, the calendar follows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from icalendar import Calendar

from tests.fixtures.bot import Bot, running_bot
from tgemu import BotApiEmulator, TelegramUser


async def calendar_status(bot: Bot, specialist: str, uid: str, *, want: str | None, tries: int = 100) -> str | None:
    """Wait until the event's STATUS on the CalDAV server is `want` (None: gone); return what is there.

    Reads with a plain HTTP GET, independently of the bot's own CalDAV code.
    """
    account = bot.runtime.accounts[specialist]
    url = account.calendar_url.rstrip("/") + f"/{uid}.ics"
    status: str | None = "unread"
    async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
        for _ in range(tries):
            response = await http.get(url)
            status = (
                str(Calendar.from_ical(response.text).walk("VEVENT")[0]["STATUS"])
                if response.status_code == 200
                else None
            )
            if status == want:
                break
            await asyncio.sleep(0.1)
    return status


async def book_first_consultation(
    client: TelegramUser, *, note: str | None = "Prefer the quiet room, thanks! 🙂"
) -> None:
    """Walk the whole dialog as a new client: centre, first consultation with Anna, Wed 2 Dec 09:00, on site."""
    await client.send("/start")
    assert "Where would you like to meet?" in client.last.text
    await client.tap("City centre office")
    await client.tap("Individual")
    await client.tap("First consultation")
    assert "Please arrive five minutes early" in client.last.text  # the service's instructions
    await client.tap("Anna Kowalska")
    assert "December 2026" in client.last.text or any("December 2026" in b for row in client.last.buttons for b in row)
    await client.tap("2")
    assert "09:00" in [b for row in client.last.buttons for b in row]
    await client.tap("09:00")
    await client.tap("On site")
    if note is None:
        await client.tap("Skip")
    else:
        await client.send(note)
    if "first and last name" in client.last.text:
        await client.send("Jan Nowak")
        await client.share_contact("48601234567")
        await client.tap("Skip")  # no e-mail
        await client.tap("I agree")
    assert "Please check your request" in client.last.text
    await client.tap("Send request")


async def test_complete_booking_approved(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)
    assert "Your request has been sent" in client.last.text

    request = bot.anna.last
    assert "New appointment request" in request.text
    assert "Jan Nowak" in request.text and "+48601234567" in request.text
    assert "Prefer the quiet room, thanks! 🙂" in request.text
    assert request.buttons == [["Approve", "Decline"]]

    async with bot.runtime.store.tx() as tx:
        client_row = await tx.client_by_telegram(1001)
        (appt,) = await tx.client_appointments(client_row.id)
    assert await calendar_status(bot, "anna", appt.uid, want="TENTATIVE") == "TENTATIVE"

    await bot.anna.tap("Approve")
    assert "confirmed" in bot.anna.last.text and bot.anna.last.buttons == []
    confirmation = [m for m in client.messages if "Your appointment is confirmed" in m.text]
    assert confirmation and "ul. Długa 12/4" in confirmation[-1].text
    ((name, data),) = client.documents
    assert name == "appointment.ics"
    event = Calendar.from_ical(data).walk("VEVENT")[0]
    assert str(event["UID"]) == appt.uid and str(event["STATUS"]) == "CONFIRMED"
    assert await calendar_status(bot, "anna", appt.uid, want="CONFIRMED") == "CONFIRMED"


async def _appointment(bot: Bot, telegram_id: int):  # type: ignore[no-untyped-def]
    async with bot.runtime.store.tx() as tx:
        client_row = await tx.client_by_telegram(telegram_id)
        appts = await tx.client_appointments(client_row.id)
    return appts[-1]


async def test_declined_with_a_preset_reason_frees_the_slot(bot: Bot) -> None:
    client = bot.user(1002, "Ola")
    await book_first_consultation(client, note=None)
    appt = await _appointment(bot, 1002)
    assert await calendar_status(bot, "anna", appt.uid, want="TENTATIVE") == "TENTATIVE"

    await bot.anna.tap("Decline")
    assert "Why are you declining?" in bot.anna.last.text
    await bot.anna.tap("This time is no longer available")
    assert "declined" in bot.anna.last.text and bot.anna.last.buttons == []
    told = client.last
    assert "could not be accepted" in told.text and "This time is no longer available" in told.text
    assert told.buttons == [["Choose another time"]]
    assert await calendar_status(bot, "anna", appt.uid, want=None) is None

    # The client is offered other times: the same service and specialist, and 09:00 is free again.
    await client.tap("Choose another time")
    await client.tap("2")
    assert "09:00" in [b for row in client.last.buttons for b in row]


async def test_declined_with_a_typed_reason(bot: Bot) -> None:
    client = bot.user(1003, "Piotr")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Decline")
    await bot.anna.tap("Type a reason")
    assert "type the reason" in bot.anna.last.text
    await bot.anna.send("I am away that week, sorry; please try Jonas.")
    assert "Declined" in bot.anna.last.text
    assert "I am away that week, sorry; please try Jonas." in client.last.text
    appt = await _appointment(bot, 1003)
    assert appt.status == "declined" and appt.decline_reason == "I am away that week, sorry; please try Jonas."


async def test_request_expires_when_nobody_answers(bot: Bot) -> None:
    client = bot.user(1004, "Ewa")
    await book_first_consultation(client, note=None)
    appt = await _appointment(bot, 1004)
    await bot.sweep()
    assert (await _appointment(bot, 1004)).status == "requested"  # not yet

    bot.clock.advance(hours=24, minutes=1)
    await bot.sweep()
    assert "did not answer your request in time" in client.last.text
    assert "expired" in bot.anna.last.text and bot.anna.last.buttons == []
    assert (await _appointment(bot, 1004)).status == "expired"
    assert await calendar_status(bot, "anna", appt.uid, want=None) is None

    await bot.anna.tap_data(f"s|a|{appt.id}", message_id=bot.anna.last.message_id)
    assert "already expired" in bot.anna.answers[-1].text
    assert (await _appointment(bot, 1004)).status == "expired"


async def test_only_the_specialist_or_an_admin_may_decide(bot: Bot) -> None:
    client = bot.user(1005, "Kasia")
    await book_first_consultation(client, note=None)
    appt = await _appointment(bot, 1005)

    stranger, jonas = bot.user(5555, "Mallory"), bot.user(9002, "Jonas")
    await stranger.send("/start")
    await jonas.send("/start")
    for person in (stranger, client, jonas):
        await person.tap_data(f"s|a|{appt.id}")
        assert person.answers[-1].text == "This button is not valid."  # as for an unknown appointment
    assert (await _appointment(bot, 1005)).status == "requested"

    admin = bot.emulator.user(9999, "Admin")
    await admin.send("/start")
    await admin.tap_data(f"s|a|{appt.id}")
    assert (await _appointment(bot, 1005)).status == "confirmed"
    assert bot.anna.last.buttons == []  # the admin's decision updated the specialist's message
    await bot.anna.tap_data(f"s|a|{appt.id}", message_id=bot.anna.last.message_id)  # a stale Approve
    assert "already confirmed" in bot.anna.answers[-1].text


async def test_garbage_and_stale_buttons_change_nothing(bot: Bot) -> None:
    client = bot.user(1006, "Ala")
    await client.send("/start")
    first_dialog = client.last.message_id
    await client.tap("City centre office")
    before = client.last.text

    for data in (
        "b|pick|nowhere",
        "b|day|2026-13-45",
        "b|time|notanumber",
        "s|a|abc",
        "s|r|1|99",
        "x" * 64,
        "b|",
    ):
        await client.tap_data(data, message_id=client.last.message_id)
        assert "not valid" in client.answers[-1].text or "out of date" in client.answers[-1].text, data
    assert client.last.text == before

    await client.send("/book")  # a new dialog: the first message's buttons are stale now
    await client.tap_data("b|pick|centre", message_id=first_dialog)
    assert "out of date" in client.answers[-1].text
    await client.tap("City centre office")
    assert "What is it about?" in client.last.text


async def test_complete_booking_on_postgresql(tmp_path: Path, emulator: BotApiEmulator, pg_url: str) -> None:
    """The scale-out database runs the same dialog and decisions."""
    async with running_bot(tmp_path, emulator, database_url=pg_url) as bot:
        await bot.anna.send("/start")
        client = bot.user(1009, "Jan")
        await book_first_consultation(client)
        await bot.anna.tap("Approve")
        appt = await _appointment(bot, 1009)
        assert appt.status == "confirmed"
        assert await calendar_status(bot, "anna", appt.uid, want="CONFIRMED") == "CONFIRMED"
