"""End to end: clients' data as health data, read back from the real Radicale and the bot's own logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar

from bot.settings import OWN_LOGGERS, QUIET, configure_logging
from tests.fixtures.bot import Bot
from tests.test_e2e_booking import book_first_consultation
from tgemu import TelegramUser

NAME, PHONE, EMAIL, NOTE = "Jan Nowak", "+48601234567", "jan.nowak@example.org", "Prefer the quiet room, thanks! 🙂"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in (*QUIET, *OWN_LOGGERS)}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


async def book_with_email(client: TelegramUser) -> None:
    """The whole dialog as a new client who gives every detail: name, phone, e-mail and a note."""
    await client.send("/start")
    for label in ("City centre office", "Individual", "First consultation", "Anna Kowalska", "2", "09:00", "On site"):
        await client.tap(label)
    await client.send(NOTE)
    await client.send(NAME)
    await client.share_contact(PHONE.lstrip("+"))
    await client.send(EMAIL)
    await client.tap("I agree")
    assert "Please check your request" in client.last.text
    await client.tap("Send request")


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


async def test_a_whole_booking_logs_nothing_of_the_client_nor_the_token(
    bot: Bot, tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging(verbose=True)  # -v: the most a log ever says
    logging.getLogger("bot.e2e_privacy").info("the log is captured")
    client = bot.user(1502, "Jan")
    await book_with_email(client)
    assert "Your request has been sent" in client.last.text
    await bot.anna.tap("Approve")
    _, uid = await booked(bot, client)
    assert await stored_event(bot, "anna", uid, until="CONFIRMED")
    await client.send("/my")
    await bot.anna.send("/agenda")
    await bot.sweep()
    logged = capsys.readouterr().err
    server_log = tmp_path / "radicale" / "radicale.log"
    logged += server_log.read_text(encoding="utf-8", errors="replace") if server_log.exists() else ""
    assert "the log is captured" in logged
    for secret in (NAME, "Nowak", PHONE, "601234567", EMAIL, NOTE, "quiet room", bot.emulator.token.split(":")[1]):
        assert secret not in logged, secret
