"""End to end: a visit staff flag "ASAP" waits for an earlier time on the waiting list, shown on its card."""

from __future__ import annotations

from datetime import UTC, date, datetime

from scheduling.store import AppointmentRow
from tests.fixtures.bot import ADMIN, Bot
from tests.test_e2e_client_changes import _rows
from tests.test_e2e_waitlist import book_wednesday, offers
from tests.test_e2e_workspace import pick_visit
from tgemu import TelegramUser

WED_2_DEC = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # 09:00 in Warsaw
WED_9_DEC = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)
ASAP = "ASAP: wants an earlier time"


async def visit_on(bot: Bot, telegram_id: int, start: datetime) -> AppointmentRow:
    (appt,) = [a for a in await _rows(bot, telegram_id) if a.start == start and a.replaces_id is None]
    return appt


async def cancel_first(client: TelegramUser) -> None:
    await client.send("/my")
    await client.tap("Cancel #1")
    await client.tap("Yes, cancel it")


async def test_a_visit_flagged_asap_is_offered_an_earlier_time_that_frees_up(bot: Bot) -> None:
    leaving, flagged = bot.user(7701, "Ola"), bot.user(7702, "Jan")
    await book_wednesday(bot, leaving, "2")  # Wednesday 2 December, 09:00
    await book_wednesday(bot, flagged, "9")  # a week later: the client would rather come sooner
    appt = await visit_on(bot, 7702, WED_9_DEC)

    await bot.anna.tap_data(f"k|c|{appt.id}")
    assert "Waiting list:" not in bot.anna.last.text
    await bot.anna.tap(ASAP)
    card = bot.anna.last.text
    assert f"Flags: {ASAP}" in card
    assert f"Waiting list:\n· First consultation: an earlier time for #{appt.id}" in card
    await bot.anna.tap("Client record")
    assert f"Waiting list:\n· First consultation: an earlier time for #{appt.id}" in bot.anna.last.text
    # The times free when Anna flagged the visit were hers to book: only time freed from now on is offered.
    await bot.sweep()
    assert offers(flagged) == []

    await cancel_first(leaving)
    [offer] = offers(flagged)
    assert "An earlier time for your appointment has freed up" in offer
    assert "Wednesday, December 2, 2026, 09:00" in offer
    assert ASAP not in offer and "ASAP" not in offer  # the flag itself never reaches the client
    await bot.anna.tap_data(f"k|c|{appt.id}")
    assert "offered Wednesday, December 2, 2026, 09:00, waiting for the client's answer" in bot.anna.last.text

    await flagged.tap("Move my appointment here")
    assert "request to move the appointment has been sent" in flagged.last.text
    await bot.anna.tap("Approve")
    moved = await visit_on(bot, 7702, WED_2_DEC)
    assert moved.id == appt.id and moved.status == "confirmed"
    await bot.anna.tap_data(f"k|c|{appt.id}")
    assert "Waiting list:" not in bot.anna.last.text  # the wait is over: the client has the earlier time


async def test_unflagging_ends_the_wait(bot: Bot) -> None:
    leaving, flagged = bot.user(7711, "Ola"), bot.user(7712, "Jan")
    await book_wednesday(bot, leaving, "2")
    await book_wednesday(bot, flagged, "9")
    appt = await visit_on(bot, 7712, WED_9_DEC)
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap(ASAP)
    assert "Waiting list:" in bot.anna.last.text
    await bot.anna.tap(f"✓ {ASAP}")
    assert "Waiting list:" not in bot.anna.last.text and "Flags:" not in bot.anna.last.text
    await cancel_first(leaving)
    await bot.sweep()
    assert offers(flagged) == []


async def test_a_proposed_visit_flagged_asap_waits_once_the_client_accepts(bot: Bot) -> None:
    leaving, client, taker = bot.user(7721, "Ola"), bot.user(7722, "Jan"), bot.user(7723, "Eva")
    await book_wednesday(bot, leaving, "2")
    await book_wednesday(bot, client, "16")  # the client's record: "Client 7722"
    await bot.anna.send("/new")
    await bot.anna.send("Client 7722")
    await bot.anna.tap("Client 7722")
    await pick_visit(bot.anna, time="09:00", day="9")
    await bot.anna.tap(ASAP)
    await bot.anna.tap("Continue")
    await bot.anna.tap("Save")
    assert "proposed, waiting for the client" in bot.anna.last.text
    proposed = await visit_on(bot, 7722, WED_9_DEC)
    await cancel_first(leaving)  # freed while the visit is only proposed: nothing to move yet
    assert offers(client) == []
    await book_wednesday(bot, taker, "2")  # taken again

    await client.tap("Accept")
    assert offers(client) == []
    await bot.anna.tap_data(f"k|c|{proposed.id}")
    assert f"an earlier time for #{proposed.id}" in bot.anna.last.text
    await cancel_first(taker)
    [offer] = offers(client)
    assert "An earlier time for your appointment has freed up" in offer and "December 2, 2026, 09:00" in offer


async def test_a_card_shows_only_the_waits_its_reader_may_see(bot: Bot) -> None:
    """The client also waits for a time with Jonas: Anna's card leaves it out, an admin's shows it."""
    client = bot.user(7731, "Jan")
    await book_wednesday(bot, client, "9")
    appt = await visit_on(bot, 7731, WED_9_DEC)
    waitlist = bot.runtime.deps.waitlist
    await waitlist.join(
        appt.client_id,
        service_id="first",
        location_id="centre",
        specialist_id="jonas",
        first_day=date(2026, 12, 1),
        last_day=date(2026, 12, 15),
    )
    await bot.anna.tap_data(f"k|c|{appt.id}")
    assert "Waiting list:" not in bot.anna.last.text
    admin = bot.user(ADMIN, "Admin")
    await admin.send("/start")
    await admin.tap_data(f"k|c|{appt.id}")
    assert "Waiting list:\n· First consultation: a time from Tuesday, December 1, 2026 to" in admin.last.text
