"""Scale-out that holds: one chat in order across bot processes, and flood control that delays only its chat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.bench_e2e import run
from bot.local import local_bot
from scheduling.locks import CAPACITY
from tests.fixtures.bot import e2e_practice
from tgemu import BotApiEmulator, TelegramUser


@pytest.mark.postgres
async def test_two_webhook_processes_take_every_tap_of_a_chat_in_order(pg_url: str) -> None:
    """Two real `bot.local` processes behind a relay that alternates each chat's updates between them."""
    async with asyncio.timeout(400):  # a hang fails the test instead of stalling the suite
        report = await run(20, processes=2, database_url=pg_url, timeout=240)

    assert not report.timed_out, "\n".join(report.lines())
    assert all(count > 0 for count in report.delivered) and len(report.delivered) == 2
    assert report.refused_taps == 0 and report.unanswered == 0
    assert report.final["failed"] == report.final["stuck"] == report.final["unfinished"] == 0, report.failures
    assert report.final["booked"] + report.final["full"] == 20 and report.booked >= 1
    assert report.replies > 0  # taps answered in the webhook's HTTP response
    assert report.overlaps is not None and report.overlaps.found == 0
    assert report.overlaps.events == report.overlaps.active == report.booked


def _dialog_shown(user: TelegramUser) -> bool:
    return any("Where would you like to meet?" in m.text for m in user.messages)


async def test_flood_control_for_one_chat_delays_only_that_chat(tmp_path: Path) -> None:
    async with (
        asyncio.timeout(180),  # a hang here fails the test instead of stalling the suite
        BotApiEmulator(global_per_second=None, chat_per_second=None) as emulator,
        local_bot(tmp_path, emulator, e2e_practice(), rate_limit=True, sweep_seconds=None),
    ):
        busy, others = emulator.user(6001, "Busy"), [emulator.user(6002 + i, "Calm") for i in range(3)]
        emulator.flood(busy.id, retry_after=1)  # every call for this chat answers 429 until calm()
        try:
            await busy.send("/start", wait=False)
            # The others write once the busy chat is under flood control, whatever the machine's speed.
            await busy.wait_for(lambda u: emulator.flooded[u.id] >= 1, timeout=60)
            for _ in range(CAPACITY + 8):  # an impatient person: more updates than the bot handles at once
                await busy.send("Hello?", wait=False)
            await asyncio.gather(*(user.send("/start", wait=False) for user in others))
            for user in others:
                await user.wait_for(_dialog_shown, timeout=60)
            assert busy.messages == []  # still waiting out its flood control
        finally:
            emulator.calm(busy.id)  # even after a failure, so that the bot can stop
        await busy.wait_for(_dialog_shown, timeout=60)
        await emulator.wait_idle(timeout=60)
        texts = [m.text for m in busy.messages]
        assert texts[0].startswith("Hello! I book appointments") and not any("went wrong" in t for t in texts)
        assert "Where would you like to meet?" in texts[1]  # in order: the greeting's dialog before the rest
        assert texts.count("Please use the buttons above, or send /cancel to stop.") == CAPACITY + 8
        assert emulator.flooded[busy.id] >= 1 and not any(emulator.flooded[user.id] for user in others)
