"""End to end: a calendar read never cancels appointments by itself (lost writes, renamed calendars, mass vanishing)."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from scheduling.store import AppointmentRow
from tests.fixtures.bot import CENTRE_FIRST_CONSULTATION, Bot, running_bot, tap_through
from tests.fixtures.caldav import CalDAVServer, auth_of, make_calendar
from tests.fixtures.proxy import FaultProxy, practice_on, to_summary
from tests.test_e2e_calendar_edits import CalendarApp
from tgemu import BotApiEmulator, TelegramUser

CONFIRM = {"minutes": 6}  # past the time two reads must be apart before a missing event counts as deleted


async def request_at(bot: Bot, telegram_id: int, time: str) -> TelegramUser:
    """A new client requests Wednesday 2 December at `time` with Anna, on site."""
    client = await to_summary(bot, telegram_id, time)
    await client.tap("Send request")
    assert "Your request has been sent" in client.last.text
    return client


async def anna_appointments(bot: Bot) -> list[AppointmentRow]:
    async with bot.runtime.store.tx() as tx:
        return await tx.active_appointments("anna", bot.clock.now, bot.clock.now.replace(year=2027))


async def settle(bot: Bot) -> None:
    """Write everything queued (the background worker may hold some of it), then let the sweep read the calendar."""
    await bot.drain_calendar_writes()
    await bot.sweep()


def on_server(server: CalDAVServer, calendar_url: str, uid: str) -> int:
    return httpx.get(f"{calendar_url}{uid}.ics", auth=auth_of(server), timeout=10).status_code


@pytest.mark.usefixtures("anna_password")
async def test_a_write_the_server_lost_is_written_again_not_cancelled(
    tmp_path: Path, emulator: BotApiEmulator, radicale_account: CalDAVServer
) -> None:
    async with FaultProxy(radicale_account.url) as proxy:
        practice = practice_on(radicale_account, proxy.url, radicale_account.calendar)
        async with running_bot(tmp_path, emulator, practice=practice) as bot:
            await bot.anna.send("/start")
            proxy.lose = lambda request: not proxy.lost  # the first event PUT is answered 201 and dropped
            client = await request_at(bot, 7101, "09:00")
            await bot.drain_outbox()
            [appt] = await anna_appointments(bot)
            assert proxy.lost and on_server(radicale_account, radicale_account.calendar_url, appt.uid) == 404

            await bot.sweep()  # the event is missing, but no read ever showed it: it is written again
            await settle(bot)
            assert on_server(radicale_account, radicale_account.calendar_url, appt.uid) == 200
            bot.clock.advance(**CONFIRM)
            await settle(bot)
            [still] = await anna_appointments(bot)
            assert still.status == "requested"
            assert not [m for m in client.messages if "could not be accepted" in m.text]
            assert "Approve" in [b for row in bot.anna.last.buttons for b in row]


@pytest.mark.usefixtures("anna_password")
async def test_a_renamed_booking_calendar_moves_the_events_and_cancels_nothing(
    tmp_path: Path, emulator: BotApiEmulator, radicale_account: CalDAVServer
) -> None:
    before = practice_on(radicale_account, radicale_account.url, radicale_account.calendar)
    async with running_bot(tmp_path, emulator, practice=before) as bot:
        await bot.anna.send("/start")
        first = await request_at(bot, 7201, "09:00")
        await bot.anna.tap("Approve")
        second = await request_at(bot, 7202, "10:00")
        await settle(bot)
        uids = [a.uid for a in await anna_appointments(bot)]
        assert len(uids) == 2
    told = len(first.messages), len(second.messages)

    # The practice renames Anna's booking calendar in practice.toml and restarts the bot.
    renamed = f"renamed-{secrets.token_hex(3)}"
    renamed_url = make_calendar(radicale_account.home_url, renamed, auth_of(radicale_account))
    after = practice_on(radicale_account, radicale_account.url, renamed)
    async with running_bot(tmp_path, emulator, practice=after) as bot:
        for _ in range(2):
            await settle(bot)
            bot.clock.advance(**CONFIRM)
        await settle(bot)
        appts = await anna_appointments(bot)
        assert sorted(a.status for a in appts) == ["confirmed", "requested"]
        for uid in uids:
            assert on_server(radicale_account, renamed_url, uid) == 200
            assert on_server(radicale_account, radicale_account.calendar_url, uid) == 404
        assert (len(first.messages), len(second.messages)) == told  # no client was told anything


async def vanish_three(bot: Bot) -> list[TelegramUser]:
    clients = [await request_at(bot, 7300 + i, time) for i, time in enumerate(("09:00", "10:00", "11:00"))]
    await settle(bot)
    app = CalendarApp(bot)
    for appt in await anna_appointments(bot):
        await app.delete(appt.uid)
    await bot.sweep()
    bot.clock.advance(**CONFIRM)
    await bot.sweep()
    return clients


async def test_many_events_vanishing_at_once_cancel_nothing_and_restore_on_request(bot: Bot) -> None:
    clients = await vanish_three(bot)
    assert [a.status for a in await anna_appointments(bot)] == ["requested"] * 3
    assert "3 visits of Anna Kowalska are missing" in bot.anna.last.text
    assert not [m for c in clients for m in c.messages if "could not be accepted" in m.text]
    bot.clock.advance(**CONFIRM)
    await bot.sweep()  # asked once, not on every pass
    assert len([m for m in bot.anna.messages if "are missing" in m.text]) == 1

    await bot.anna.tap("Restore them in the calendar")
    assert "being written to the calendar again" in bot.anna.last.text and bot.anna.last.buttons == []
    await settle(bot)
    app = CalendarApp(bot)
    restored = await anna_appointments(bot)
    assert [a.status for a in restored] == ["requested"] * 3
    async with httpx.AsyncClient(auth=app.auth) as http:
        for appt in restored:
            assert (await http.get(f"{app.base}{appt.uid}.ics")).status_code == 200


async def test_staff_can_confirm_that_vanished_events_were_cancelled(bot: Bot) -> None:
    clients = await vanish_three(bot)
    await bot.anna.tap("They were cancelled")
    assert "their clients have been told" in bot.anna.last.text
    assert await anna_appointments(bot) == []
    for client in clients:
        assert "could not be accepted" in client.last.text
    await bot.anna.tap_data("a|r|1")  # a second, stale answer changes nothing
    await settle(bot)
    assert await anna_appointments(bot) == []


async def test_staff_are_told_once_when_writes_keep_failing(bot: Bot) -> None:
    client = await to_summary(bot, 7401, "09:00")
    server = bot.runtime.embedded
    assert server is not None
    await server.stop()
    await client.tap("Send request")
    await bot.drain_outbox()
    bot.clock.advance(minutes=30)
    await bot.sweep()
    assert not [m for m in bot.anna.messages if "cannot be written" in m.text]
    bot.clock.advance(minutes=31)
    await bot.drain_outbox()
    await bot.sweep()
    [alert] = [m for m in bot.anna.messages if "cannot be written" in m.text]
    assert "Anna Kowalska for over 60 minutes" in alert.text and "CalendarUnavailable" in alert.text
    assert "Ola" not in alert.text and "Nowak" not in alert.text
    bot.clock.advance(minutes=60)
    await bot.sweep()
    assert len([m for m in bot.anna.messages if "cannot be written" in m.text]) == 1
    assert "Your request has been sent" in client.last.text  # the client's request stands


async def test_a_note_with_a_noncharacter_is_cleaned_and_the_calendar_stays_readable(bot: Bot) -> None:
    client = bot.user(7501, "Client")
    await client.send("/book")
    await tap_through(client, *CENTRE_FIRST_CONSULTATION, "Anna Kowalska", "2", "09:00", "On site")
    await client.send("Quiet room\ufffe please\x00\u202e")
    await client.send("Ola Nowak")
    await client.share_contact("48601234568")
    await tap_through(client, "Skip", "I agree", "Send request")
    assert "Your request has been sent" in client.last.text
    await settle(bot)
    [appt] = await anna_appointments(bot)
    assert appt.note == "Quiet room please\u202e"
    # The calendar still reads: another client is offered the day's other times, fresh from the server.
    busy = await bot.runtime.booking.busy(["anna"], appt.start, appt.end, fresh=True)
    assert [b.uid for b in busy["anna"]] == [appt.uid]
    other = await to_summary(bot, 7502, "10:00")
    assert "Please check your request" in other.last.text
