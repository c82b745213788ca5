"""End to end: what the bot tells staff on its own arrives in each one's language, not the practice's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.fixtures.bot import ADMIN, ANNA, Bot, running_bot
from tests.fixtures.proxy import to_summary
from tests.test_e2e_booking import _appointment
from tests.test_e2e_calendar_trust import vanish_three
from tests.test_e2e_client_files import book
from tgemu import BotApiEmulator, TelegramUser


@pytest_asyncio.fixture
async def staff_bot(tmp_path: Path, emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    """An English practice whose specialist Anna uses Telegram in German and whose admin uses it in Polish."""
    async with running_bot(tmp_path, emulator) as b:
        await b.user(ANNA, "Anna", lang="de").send("/start")
        await b.user(ADMIN, "Admin", lang="pl").send("/start")
        yield b


def admin(bot: Bot) -> TelegramUser:
    return bot.user(ADMIN, "Admin", lang="pl")


def texts(user: TelegramUser) -> list[str]:
    return [m.text for m in user.messages]


async def test_notices_and_alerts_reach_each_staff_member_in_their_language(staff_bot: Bot) -> None:
    bot = staff_bot
    client = bot.user(7601, "Jan")  # the client writes English, like the practice
    await book(client, "Video call")
    await bot.anna.tap("Bestätigen")
    assert any("Your appointment is confirmed" in t for t in texts(client))
    # No video link is set up: Anna is asked, in German, to send one.
    assert any("Für diesen Videotermin ist kein Link eingerichtet" in t for t in texts(bot.anna))
    assert not any("No video link is set up" in t for t in texts(bot.anna))

    # The client writes to Anna, and she answers: both screens of hers are German.
    await client.send("/my")
    await client.tap("Message the specialist about #1")
    await client.send("May I come ten minutes later?")
    got = bot.anna.last
    assert "Nachricht von Jan Nowak" in got.text and got.buttons == [["Antworten"]]
    await bot.anna.tap("Antworten")
    assert "Schreiben Sie Ihre Nachricht an Jan Nowak" in bot.anna.last.text
    await bot.anna.send("Ja, gern.")
    assert "Ihre Nachricht wurde gesendet." in bot.anna.last.text
    assert "Ja, gern." in client.last.text and "Message from Anna Kowalska" in client.last.text

    # The client cancels: Anna's notice is German, the client's screens stay English.
    await client.send("/my")
    await client.tap("Cancel #1")
    await client.tap("Yes, cancel it")
    assert any("The appointment is cancelled" in t for t in texts(client))
    assert any("Der Klient hat den Termin" in t and "abgesagt" in t for t in texts(bot.anna))
    assert not any("The client cancelled" in t for t in texts(bot.anna))
    assert (await _appointment(bot, 7601)).status == "cancelled"

    # The calendar server stops accepting writes: Anna is told in German, the admin in Polish.
    other = await to_summary(bot, 7602, "10:00")
    server = bot.runtime.embedded
    assert server is not None
    await server.stop()
    await other.tap("Send request")
    await bot.drain_outbox()
    bot.clock.advance(minutes=61)
    await bot.drain_outbox()
    await bot.sweep()
    [german] = [t for t in texts(bot.anna) if "Seit über 60 Minuten" in t]
    assert "Nichts geht verloren" in german and "Anna Kowalska" in german
    [polish] = [t for t in texts(admin(bot)) if "Od ponad 60 min nie można zapisać wizyt" in t]
    assert "Nic nie przepadło" in polish
    assert not any("cannot be written" in t for t in texts(bot.anna) + texts(admin(bot)))


async def test_a_calendar_incident_is_asked_and_answered_in_each_ones_language(staff_bot: Bot) -> None:
    bot = staff_bot
    await vanish_three(bot)
    german = bot.anna.last
    assert "Im Buchungskalender von Anna Kowalska fehlen Termine (Anzahl: 3)." in german.text
    assert german.buttons == [["Im Kalender wiederherstellen"], ["Sie wurden abgesagt"]]
    polish = admin(bot).last
    assert "W kalendarzu rezerwacji brakuje wizyt (3) – Anna Kowalska." in polish.text
    assert polish.buttons == [["Przywróć je w kalendarzu"], ["Zostały odwołane"]]
    await bot.anna.tap("Im Kalender wiederherstellen")
    assert "werden erneut in den Kalender geschrieben" in bot.anna.last.text and bot.anna.last.buttons == []
    await admin(bot).tap("Zostały odwołane")  # a second, stale answer: refused in Polish
    assert admin(bot).answers[-1].text == "Ktoś już na to odpowiedział."
