"""End to end: the waiting list offers freed time in order of asking, one client at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fixtures.bot import Bot, e2e_practice, running_bot, tap_through
from tests.test_e2e_client_changes import _rows
from tgemu import BotApiEmulator, TelegramUser

WED_2_DEC = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # 09:00 in Warsaw


def _one_slot_a_week(data: dict[str, Any]) -> None:
    """Anna works one hour on Wednesdays: one first consultation a week, so nothing earlier is free."""
    anna = data["specialists"][0]
    anna["schedule"] = [{"weekday": "wed", "start": "09:00", "end": "10:00", "location": "centre"}]
    anna["exceptions"] = []


async def book_wednesday(bot: Bot, client: TelegramUser, day: str) -> None:
    await client.send("/book")
    await tap_through(client, "City centre office", "Individual", "First consultation", "Anna Kowalska", day)
    await tap_through(client, "09:00", "On site", "Skip")
    await client.send(f"Client {client.id}")
    await client.share_contact(f"4860123{client.id}")
    await tap_through(client, "Skip", "I agree", "Send request")
    await bot.anna.tap("Approve")


async def wait_for_earlier(client: TelegramUser) -> None:
    await client.send("/my")
    await client.tap("Earlier time? #1")
    assert "earlier time frees up" in client.last.text


def offers(client: TelegramUser) -> list[str]:
    return [m.text for m in client.messages if "has freed up" in m.text]


async def two_waiting_then_a_cancellation(bot: Bot, first_id: int) -> tuple[TelegramUser, TelegramUser]:
    """Wednesdays 2, 9 and 16 December booked; the clients of the 9th and the 16th (in that order) wait
    for an earlier time; then the 2nd is cancelled. Returns the two who wait."""
    await bot.anna.send("/start")
    first, second, leaving = bot.user(first_id, "Ala"), bot.user(first_id + 1, "Bea"), bot.user(first_id + 2, "Cyd")
    await book_wednesday(bot, leaving, "2")
    await book_wednesday(bot, first, "9")
    await book_wednesday(bot, second, "16")
    await wait_for_earlier(first)
    await wait_for_earlier(second)
    assert offers(first) == [] and offers(second) == []  # nothing earlier is free yet
    await leaving.send("/my")
    await leaving.tap("Cancel #1")
    await leaving.tap("Yes, cancel it")
    return first, second


async def test_freed_time_goes_to_the_first_asker_then_the_next_and_a_race_books_once(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(_one_slot_a_week)) as bot:
        first, second = await two_waiting_then_a_cancellation(bot, 7401)
        assert len(offers(first)) == 1 and offers(second) == []  # in order of asking, one at a time
        assert "Wednesday, December 2, 2026, 09:00" in offers(first)[0]
        stale_data, stale_id = first.last.button_data[0][0], first.last.message_id

        bot.clock.advance(minutes=11)  # the first lets the offer lapse
        await bot.sweep()
        assert "lapsed" in first.last.text
        assert len(offers(second)) == 1

        # Both tap at once: the lapsed offer and the live one.
        await first.tap_data(stale_data, message_id=stale_id, wait=False)
        await second.tap("Move my appointment here", wait=False)
        await bot.emulator.wait_idle()
        assert "no longer available" in first.answers[-1].text
        moves = [a for a in await _rows(bot, 7402) if a.replaces_id is not None]
        assert [m.start for m in moves] == [WED_2_DEC]
        assert not [a for a in await _rows(bot, 7401) if a.replaces_id is not None]

        await bot.anna.tap("Approve")
        (visit, _) = await _rows(bot, 7402)
        assert visit.start == WED_2_DEC and visit.status == "confirmed"
        (kept,) = await _rows(bot, 7401)
        assert kept.start != WED_2_DEC


async def test_no_thanks_passes_the_time_to_the_next_client(tmp_path: Path, emulator: BotApiEmulator) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(_one_slot_a_week)) as bot:
        first, second = await two_waiting_then_a_cancellation(bot, 7411)
        await first.tap("No, thanks")
        assert "keep looking" in first.last.text
        assert len(offers(second)) == 1
        before = len(first.messages)
        await bot.sweep()
        assert len(first.messages) == before  # the time turned down is not offered to them again


async def test_waiting_from_the_day_picker_offers_only_time_freed_later(
    tmp_path: Path, emulator: BotApiEmulator
) -> None:
    async with running_bot(tmp_path, emulator, practice=e2e_practice(_one_slot_a_week)) as bot:
        await bot.anna.send("/start")
        waiting, leaving = bot.user(7421, "Ela"), bot.user(7422, "Fin")
        await book_wednesday(bot, leaving, "2")
        await book_wednesday(bot, waiting, "9")
        await waiting.send("/book")
        await tap_through(waiting, "City centre office", "Individual", "First consultation", "Anna Kowalska")
        await waiting.tap("Tell me if a time frees up this month")
        assert "if a time frees up between" in waiting.last.text
        await bot.sweep()
        assert offers(waiting) == []  # the 16th, 23rd and 30th were on screen and did not suit

        await leaving.send("/my")
        await leaving.tap("Cancel #1")
        await leaving.tap("Yes, cancel it")
        assert len(offers(waiting)) == 1 and "December 2, 2026, 09:00" in offers(waiting)[0]
        await waiting.tap("Take it")
        assert "Your request has been sent" in waiting.last.text
        assert "New appointment request" in bot.anna.last.text
        requested = [a for a in await _rows(bot, 7421) if a.start == WED_2_DEC]
        assert [a.status for a in requested] == ["requested"]
