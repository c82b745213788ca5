"""End to end: one specialist's calendar server is unreachable when the bot starts. The bot starts anyway,
the other specialist is booked, /healthz names the unreachable one, nothing of theirs is offered, and once
the server answers they are connected again in the background and booked, without a restart."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.web import health_report
from tests.fixtures.bot import CENTRE_FIRST_CONSULTATION, running_bot, tap_through
from tests.fixtures.caldav import CalDAVServer, free_port, get_raw
from tests.fixtures.proxy import FaultProxy, practice_on, to_summary
from tgemu import BotApiEmulator, TelegramUser

SENT = "Your request has been sent"


def _first(user: TelegramUser, pattern: str) -> str:
    """The first button of the latest keyboard whose label is a day number ("d") or a time ("t")."""
    labels = [b for row in user.last.buttons for b in row]
    found = [b for b in labels if (b.isdigit() if pattern == "d" else b[:2].isdigit() and b[2:3] == ":")]
    assert found, f"no {pattern} button in {labels}"
    return found[0]


async def book_jonas(user: TelegramUser) -> None:
    """A new client books Jonas's first free time, on site, up to the sent request."""
    await user.send("/book")
    await tap_through(user, *CENTRE_FIRST_CONSULTATION, "Jonas Petraitis")
    await user.tap(_first(user, "d"))
    await user.tap(_first(user, "t"))
    await tap_through(user, "On site", "Skip")
    await user.send("Ola Nowak")
    await user.share_contact("48601234568")
    await tap_through(user, "Skip", "I agree", "Send request")


@pytest.mark.usefixtures("anna_password")
async def test_an_unreachable_calendar_at_start_stops_nobody_and_comes_back(
    tmp_path: Path, emulator: BotApiEmulator, radicale_account: CalDAVServer, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here yet: Anna's server refuses every connection
    practice = practice_on(radicale_account, f"http://127.0.0.1:{port}/", radicale_account.calendar)
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path, emulator, practice=practice) as bot:
        assert "anna" in bot.runtime.gateway.unavailable
        assert any(
            "calendar of specialist anna unreachable at start" in r.getMessage() and r.levelno == logging.WARNING
            for r in caplog.records
        )
        health = await health_report(bot.runtime)
        assert health["status"] == "degraded"
        assert health["calendars"]["anna"].startswith("unreachable since")
        assert health["calendars"]["jonas"] == "ok"

        # Anna's clients are told no time can be offered now; nobody sees a time of hers as free.
        client = bot.user(5001, "Client")
        await client.send("/book")
        await tap_through(client, *CENTRE_FIRST_CONSULTATION, "Anna Kowalska")
        assert "cannot be read right now" in client.last.text
        # "First available": Jonas's Tuesday is offered, Anna's Wednesday (she works then) is not.
        both = await bot.runtime.booking.free_between(
            "first", "centre", ["anna", "jonas"], date(2026, 12, 1), date(2026, 12, 2)
        )
        assert both and {s.specialist_id for s in both} == {"jonas"}

        # Jonas is booked as usual.
        other = bot.user(5002, "Other")
        await book_jonas(other)
        assert SENT in other.last.text

        # A visit of Anna's booked before this start, whose calendar write failed while she was away: it
        # waits for its next backoff step, a time the test's clock never reaches.
        now = bot.clock.now
        async with bot.runtime.store.tx() as tx:
            earlier = await tx.upsert_client(5009, name="Earlier", at=now)
            queued = await tx.add_appointment(
                client_id=earlier.id,
                specialist_id="anna",
                service_id="first",
                location_id="centre",
                channel="on_site",
                start=now + timedelta(days=2),
                end=now + timedelta(days=2, minutes=50),
                note=None,
                source=None,
                expires_at=None,
                actor=f"client:{earlier.id}",
                at=now,
            )
            await tx.enqueue_sync(queued.id, "anna", now)
        await bot.drain_outbox()
        async with bot.runtime.store.tx() as tx:
            [row] = await tx.outbox_pending(queued.id)
        assert row.attempts == 1 and row.next_attempt_at > now

        # Anna's server comes up: she is connected again in the background and booked.
        async with FaultProxy(radicale_account.url, port=port):
            async with asyncio.timeout(30):
                while "anna" in bot.runtime.gateway.unavailable:  # noqa: ASYNC110 - no event to wait on
                    await asyncio.sleep(0.1)
            # Her queued write goes at once, through the bot's own worker.
            async with asyncio.timeout(30):
                while True:
                    async with bot.runtime.store.tx() as tx:
                        if not await tx.outbox_pending(queued.id):
                            break
                    await asyncio.sleep(0.1)
            assert get_raw(radicale_account, f"{queued.uid}.ics").status_code == 200
            health = await health_report(bot.runtime)
            assert health["calendars"]["anna"] == "ok"
            assert any("calendar of specialist anna connected again" in r.getMessage() for r in caplog.records)
            anna_client = await to_summary(bot, 5003, "09:00")
            await anna_client.tap("Send request")
            assert SENT in anna_client.last.text
            await bot.drain_outbox()
        assert "anna" in bot.runtime.gateway._states
