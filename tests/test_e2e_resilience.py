"""End to end under real conditions: racing clients, several bot processes, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.fixtures.bot import ANNA, CENTRE_FIRST_CONSULTATION, Clock, running_bot, tap_through
from tgemu import BotApiEmulator, TelegramUser


async def to_summary(client: TelegramUser, name: str) -> None:
    """Walk a new client up to the summary of Wed 2 Dec 09:00 with Anna, on site."""
    await client.send("/start")
    await tap_through(client, *CENTRE_FIRST_CONSULTATION, "Anna Kowalska", "2", "09:00", "On site", "Skip")
    await client.send(name)
    await client.share_contact("48601234567")
    await client.tap("Skip")
    await client.tap("I agree")
    assert "Please check your request" in client.last.text


def _sent(client: TelegramUser) -> bool:
    return "Your request has been sent" in client.last.text


def _taken(client: TelegramUser) -> bool:
    return "this time was just taken" in client.last.text


async def test_two_clients_racing_for_one_slot_get_one_request(tmp_path: Path, emulator: BotApiEmulator) -> None:
    async with running_bot(tmp_path, emulator) as bot:
        await bot.anna.send("/start")
        first, second = bot.user(2001, "A"), bot.user(2002, "B")
        await to_summary(first, "Anna Adamska")
        await to_summary(second, "Beata Bielska")
        await asyncio.gather(first.tap("Send request", wait=False), second.tap("Send request", wait=False))
        await emulator.wait_idle(quiet=0.3)

        assert sorted([_sent(first), _sent(second)]) == [False, True]
        loser = second if _sent(first) else first
        assert _taken(loser)
        times = [b for row in loser.last.buttons for b in row]
        assert "09:00" not in times and "10:00" in times  # the day's remaining times
        requests = [m for m in bot.anna.messages if "New appointment request" in m.text]
        assert len(requests) == 1


async def test_no_double_booking_across_two_bot_processes(tmp_path: Path, db_url: str) -> None:
    """Two bot processes (each with its own Telegram connection) share one database and one calendar."""
    clock = Clock()
    db = db_url
    async with (
        BotApiEmulator(token="111:AAA") as tg1,
        BotApiEmulator(token="222:BBB") as tg2,
        running_bot(tmp_path / "one", tg1, clock=clock, database_url=db) as one,
        # The second process uses the first one's calendar server, as replicas share one CalDAV account.
        running_bot(tmp_path / "two", tg2, clock=clock, database_url=db, accounts=one.runtime.accounts) as two,
    ):
        await one.anna.send("/start")
        first, second = one.user(3001, "A"), two.user(3002, "B")
        await asyncio.gather(to_summary(first, "Anna Adamska"), to_summary(second, "Beata Bielska"))
        await asyncio.gather(first.tap("Send request", wait=False), second.tap("Send request", wait=False))
        await asyncio.gather(tg1.wait_idle(quiet=0.3), tg2.wait_idle(quiet=0.3))
        assert sorted([_sent(first), _sent(second)]) == [False, True]
        assert _taken(second if _sent(first) else first)
        async with one.runtime.store.tx() as tx:
            active = await tx.active_appointments("anna", clock.now, clock.now.replace(year=2027))
        assert len(active) == 1


async def test_restart_mid_dialog_and_while_pending_loses_nothing(tmp_path: Path, emulator: BotApiEmulator) -> None:
    clock = Clock()
    client = emulator.user(4001, "Ida")
    async with running_bot(tmp_path, emulator, clock=clock) as bot:
        await bot.anna.send("/start")
        await client.send("/start")
        await tap_through(client, *CENTRE_FIRST_CONSULTATION, "Anna Kowalska")
    # The process is gone; a new one starts on the same data and continues the same message.
    async with running_bot(tmp_path, emulator, clock=clock) as bot:
        await tap_through(client, "2", "09:00", "On site", "Skip")
        await client.send("Ida Iwańska")
        await client.share_contact("48601234567")
        await client.tap("Skip")
        await client.tap("I agree")
        await client.tap("Send request")
        assert _sent(client)
    # Restarted while the request is pending: the specialist's buttons still work...
    async with running_bot(tmp_path, emulator, clock=clock) as bot:
        await bot.anna.tap("Approve")
        assert "Your appointment is confirmed" in [m for m in client.messages if "confirmed" in m.text][-1].text


async def test_expiry_still_happens_after_a_restart(tmp_path: Path, emulator: BotApiEmulator) -> None:
    clock = Clock()
    client = emulator.user(4002, "Olek")
    async with running_bot(tmp_path, emulator, clock=clock) as bot:
        await bot.anna.send("/start")
        await to_summary(client, "Olek Olszewski")
        await client.tap("Send request")
    clock.advance(hours=25)
    async with running_bot(tmp_path, emulator, clock=clock) as bot:
        await bot.sweep()
        assert "did not answer your request in time" in client.last.text
        assert "expired" in emulator.user(ANNA, "Anna").last.text


async def test_calendar_down_while_sending_queues_the_event(tmp_path: Path, emulator: BotApiEmulator) -> None:
    clock = Clock()
    async with running_bot(tmp_path, emulator, clock=clock) as bot:
        await bot.anna.send("/start")
        client = bot.user(4003, "Zosia")
        await to_summary(client, "Zofia Zielińska")
        server = bot.runtime.embedded
        assert server is not None
        await server.stop()

        await client.tap("Send request")
        assert _sent(client)
        assert "New appointment request" in bot.anna.last.text
        async with bot.runtime.store.tx() as tx:
            (appt,) = await tx.active_appointments("anna", clock.now, clock.now.replace(year=2027))
        await bot.drain_outbox()
        async with bot.runtime.store.tx() as tx:
            (pending,) = await tx.outbox_pending(appt.id)
        assert pending.attempts >= 1 and pending.done_at is None

        await server.start(bot.runtime.practice)
        clock.advance(minutes=11)  # past the longest retry delay
        await bot.drain_outbox()
        async with bot.runtime.store.tx() as tx:
            assert await tx.outbox_pending(appt.id) == []
        account = bot.runtime.accounts["anna"]
        async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
            stored = await http.get(f"{account.calendar_url}{appt.uid}.ics")
        assert stored.status_code == 200 and "STATUS:TENTATIVE" in stored.text
