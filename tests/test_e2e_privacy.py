"""End to end: clients' data as health data, read back from the real Radicale and the bot's own logs."""

from __future__ import annotations

import asyncio

import httpx
from icalendar import Calendar

from tests.fixtures.bot import Bot
from tests.test_e2e_booking import book_first_consultation
from tgemu import TelegramUser

NAME, PHONE, NOTE = "Jan Nowak", "+48601234567", "Prefer the quiet room, thanks! 🙂"


async def stored_event(bot: Bot, specialist: str, uid: str, *, until: str | None = None) -> str | None:
    """The event's text as the calendar server holds it (a plain GET, not the bot's CalDAV code).

    With `until`, wait (draining the outbox) until that text is in it, or it is gone when `until` is "".
    """
    account = bot.runtime.accounts[specialist]
    url = account.calendar_url.rstrip("/") + f"/{uid}.ics"
    text: str | None = None
    async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
        for _ in range(100):
            await bot.drain_outbox()
            response = await http.get(url)
            text = response.text if response.status_code == 200 else None
            if until is None or (text is not None and until in text) or (until == "" and text is None):
                break
            await asyncio.sleep(0.1)
    return text


async def booked(bot: Bot, client: TelegramUser) -> tuple[int, str]:
    """The client's (first) appointment: its id and uid."""
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(client.id)
        assert row is not None
        (appt, *_) = await tx.client_appointments(row.id)
    return appt.id, appt.uid


async def test_the_calendar_event_carries_the_service_and_initials_only(bot: Bot) -> None:
    client = bot.user(1501, "Jan")
    await book_first_consultation(client, note=NOTE)
    await bot.anna.tap("Approve")
    _, uid = await booked(bot, client)
    text = await stored_event(bot, "anna", uid, until="CONFIRMED")
    assert text is not None
    event = Calendar.from_ical(text).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "First consultation: J. N."
    unfolded = text.replace("\r\n ", "")
    for secret in (NAME, "Nowak", PHONE, "601234567", "quiet room"):
        assert secret not in unfolded
    # The specialist still sees everything in Telegram.
    assert any(NAME in m.text for m in bot.anna.messages)
