"""End to end: a client books through the real Application, the specialist decides, the calendar follows."""

from __future__ import annotations

import asyncio

import httpx

from icalendar import Calendar

from bot.emulator import TelegramUser
from tests.fixtures.bot import Bot


async def calendar_status(bot: Bot, specialist: str, uid: str, *, want: str | None, timeout: float = 10) -> str | None:
    """Wait until the event's STATUS on the CalDAV server is `want` (None: gone); return what is there.

    Reads with a plain HTTP GET, independently of the bot's own CalDAV code.
    """
    account = bot.runtime.accounts[specialist]
    url = account.calendar_url.rstrip("/") + f"/{uid}.ics"
    status: str | None = "unread"
    async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
        for _ in range(int(timeout * 10)):
            response = await http.get(url)
            status = str(Calendar.from_ical(response.text).walk("VEVENT")[0]["STATUS"]) if response.status_code == 200 else None
            if status == want:
                break
            await asyncio.sleep(0.1)
    return status


async def book_first_consultation(client: TelegramUser, *, note: str | None = "Prefer the quiet room, thanks! 🙂") -> None:
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
    (name, data), = client.documents
    assert name == "appointment.ics"
    event = Calendar.from_ical(data).walk("VEVENT")[0]
    assert str(event["UID"]) == appt.uid and str(event["STATUS"]) == "CONFIRMED"
    assert await calendar_status(bot, "anna", appt.uid, want="CONFIRMED") == "CONFIRMED"
