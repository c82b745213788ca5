"""End to end: the dialog's navigation, deep links, "first available" and returning clients."""

from __future__ import annotations

import asyncio

from tests.fixtures.bot import CENTRE_FIRST_CONSULTATION, Bot, tap_through
from tests.test_e2e_booking import _appointment, book_first_consultation


def labels(bot_message) -> list[str]:  # type: ignore[no-untyped-def]
    return [b for row in bot_message.buttons for b in row]


async def test_deep_link_preselects_and_is_the_booking_source(bot: Bot) -> None:
    client = bot.user(6001, "Lena")
    await client.send("/start spring-ads__l-centre__s-first")
    assert "Who would you like to see?" in client.last.text  # location, category and service chosen
    await tap_through(client, "Anna Kowalska", "2", "09:00", "On site", "Skip")
    await client.send("Lena Lis")
    await client.share_contact("48601234567")
    await client.tap("Skip")
    await client.tap("I agree")
    await client.tap("Send request")
    assert "Source: spring-ads__l-centre__s-first" in bot.anna.last.text
    assert (await _appointment(bot, 6001)).source == "spring-ads__l-centre__s-first"


async def test_back_returns_to_the_previous_screen_and_cancel_ends(bot: Bot) -> None:
    client = bot.user(6002, "Marek")
    await client.send("/book")
    await client.tap("City centre office")
    await client.tap("Individual")
    services = client.last.text
    await client.tap("First consultation")
    await client.tap("« Back")
    assert client.last.text == services
    await client.tap("« Back")
    assert "What is it about?" in client.last.text
    await client.tap("« Back")
    assert "Where would you like to meet?" in client.last.text
    assert "« Back" not in labels(client.last)  # the first screen has nowhere to go back to
    await client.tap("Cancel")
    assert "Booking cancelled" in client.last.text and client.last.buttons == []
    await client.send("just some text")
    assert "/book" in client.last.text


async def test_a_tap_is_answered_while_its_new_screen_is_sent(bot: Bot) -> None:
    """Telegram's round trip is waited for once per tap: the new screen does not wait for the answer to come back."""
    client = bot.user(6010, "Pia")
    await client.send("/book")
    await client.tap("City centre office")
    loop = asyncio.get_running_loop()
    seen: dict[str, float] = {}
    bot.emulator.listeners.append(lambda what, message: seen.setdefault(what, loop.time()))
    bot.emulator.latency = 1.0
    await client.tap("Individual")
    bot.emulator.latency = 0.0
    assert "Which service?" in client.last.text
    # The edit reached Telegram while the tap's answer was still held on its way back to the bot.
    assert seen["edited"] - seen["answered"] < 1.0


async def test_first_available_merges_specialists_and_assigns_one(bot: Bot) -> None:
    client = bot.user(6003, "Nina")
    await client.send("/book")
    await tap_through(client, *CENTRE_FIRST_CONSULTATION)
    await client.tap("First available")
    # Tuesday 1 December is Jonas's day at the centre, Wednesday 2 December Anna's: both are offered.
    days = labels(client.last)
    assert "1" in days and "2" in days
    await client.tap("1")
    await client.tap("10:00")
    assert "Specialist: Jonas Petraitis" in client.last.text


async def test_returning_client_is_not_asked_again(bot: Bot) -> None:
    client = bot.user(6004, "Olga")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Decline")
    await bot.anna.tap("This time is no longer available")
    await client.send("/book")
    await tap_through(client, *CENTRE_FIRST_CONSULTATION)
    # A declined request does not make Anna the client's specialist: no one is put first.
    assert labels(client.last)[:3] == ["First available", "Anna Kowalska", "Jonas Petraitis"]
    await tap_through(client, "Anna Kowalska", "2", "10:00", "On site", "Skip")
    assert "Please check your request" in client.last.text  # no contact or consent questions this time
    assert "Jan Nowak, +48601234567" in client.last.text
    await client.tap("Change my details")
    assert "first and last name" in client.last.text
    await client.send("Olga Ostrowska")
    assert "share your phone number" in [m.text for m in client.messages][-2]
    await client.tap("« Back")  # from the phone question back to the name
    assert "first and last name" in client.last.text


async def test_client_lists_and_cancels_an_appointment(bot: Bot) -> None:
    client = bot.user(6005, "Pola")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    appt = await _appointment(bot, 6005)

    await client.send("/my")
    assert "Your upcoming appointments" in client.last.text and "First consultation" in client.last.text
    await client.tap("Cancel #1")
    assert "Free cancellation until 24 hours before the visit." in client.last.text  # the specialist's policy
    await client.tap("Yes, cancel it")
    assert "The appointment is cancelled" in client.messages[-2].text  # the question, edited
    assert client.last.document is not None  # then the file that removes it from the client's calendar
    assert "The client cancelled" in bot.anna.messages[-2].text or "The client cancelled" in bot.anna.last.text
    assert (await _appointment(bot, 6005)).status == "cancelled"
    await client.tap_data(f"m|y|{appt.id}", message_id=client.last.message_id)
    assert "already cancelled" in client.answers[-1].text

    stranger = bot.user(6006, "Eve")
    await stranger.send("/my")
    assert "no upcoming appointments" in stranger.last.text
    await stranger.tap_data(f"m|y|{appt.id}", message_id=stranger.last.message_id)
    assert "not valid" in stranger.answers[-1].text


async def test_late_cancellation_shows_the_policy_and_is_recorded(bot: Bot) -> None:
    client = bot.user(6007, "Rita")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    bot.clock.advance(days=1, hours=12)  # Wednesday 2 December, 07:00 local: two hours before the visit
    await client.send("/my")
    await client.tap("Cancel #1")
    shown = client.last.text
    assert "Free cancellation until 24 hours before the visit." in shown and "may charge" in shown
    assert "+48 58 123 45 67" in shown and "kontakt@example.org" in shown  # the practice's contact
    assert client.last.buttons == [["Cancel anyway"], ["No, keep it"]]
    await client.tap("No, keep it")
    assert (await _appointment(bot, 6007)).status == "confirmed"

    await client.send("/my")
    await client.tap("Cancel #1")
    await client.tap("Cancel anyway")
    assert "late cancellation" in client.messages[-2].text
    appt = await _appointment(bot, 6007)
    assert appt.status == "cancelled" and appt.cancelled_late
    told = [m.text for m in bot.anna.messages if "The client cancelled" in m.text]
    assert told and "late" in told[-1]


async def test_a_tap_answered_too_late_still_counts(bot: Bot) -> None:
    client = bot.user(6008, "Sara")
    await client.send("/book")
    await client.tap("City centre office", wait=False)
    bot.emulator.advance(20)  # Telegram gives up on the query before the bot gets to answer it
    await bot.emulator.wait_idle()
    assert "What is it about?" in client.last.text
    assert not any("Something went wrong" in m.text for m in client.messages)


async def test_clients_are_reminded_once_before_a_confirmed_visit(bot: Bot) -> None:
    client = bot.user(6009, "Tola")
    await book_first_consultation(client, note=None)  # Wednesday 2 December, 09:00 in Warsaw
    await bot.sweep()
    reminders = lambda: [m for m in client.messages if "A reminder of your appointment" in m.text]  # noqa: E731
    assert reminders() == []  # still requested: no reminder for what is not confirmed
    await bot.anna.tap("Approve")

    bot.clock.advance(hours=24)  # Tuesday 08:00 local: 25 hours before
    await bot.sweep()
    assert reminders() == []
    bot.clock.advance(hours=1, minutes=5)  # inside 24 hours
    await bot.sweep()
    await bot.sweep()
    assert len(reminders()) == 1 and "Address: ul. Długa 12/4" in reminders()[0].text
    bot.clock.advance(hours=22)  # inside 2 hours
    await bot.sweep()
    assert len(reminders()) == 2
    bot.clock.advance(hours=2)  # the visit has started: nothing more
    await bot.sweep()
    assert len(reminders()) == 2


async def test_after_downtime_only_the_nearest_reminder_is_sent(bot: Bot) -> None:
    client = bot.user(6010, "Uma")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    bot.clock.advance(days=1, hours=23, minutes=30)  # the bot slept through the 24-hour reminder
    await bot.sweep()
    await bot.sweep()
    assert len([m for m in client.messages if "A reminder of your appointment" in m.text]) == 1


async def test_the_specialist_agenda_lists_the_week_and_records_who_came(bot: Bot) -> None:
    client = bot.user(6011, "Vera")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    await bot.anna.send("/agenda")
    assert "Your agenda:" in bot.anna.last.text and "Jan Nowak, +48601234567" in bot.anna.last.text
    assert bot.anna.last.buttons == [["#1 Jan Nowak"], ["+ New visit"]]  # nothing to mark before the visit
    appt = await _appointment(bot, 6011)
    await bot.anna.tap_data(f"s|m|{appt.id}|1", message_id=bot.anna.last.message_id)
    assert "has not begun yet" in bot.anna.answers[-1].text

    bot.clock.advance(days=2, hours=1)  # Wednesday 10:00 local: the visit has begun
    await bot.anna.send("/agenda")
    assert bot.anna.last.buttons == [["#1 Jan Nowak", "#1 came", "#1 did not come"], ["+ New visit"]]
    await bot.anna.tap("#1 did not come")
    assert (await _appointment(bot, 6011)).status == "no_show"
    assert "No appointments in the coming week." in bot.anna.last.text

    stranger = bot.user(6012, "Walt")
    await stranger.send("/agenda")
    assert "for the practice's specialists" in stranger.last.text
    await stranger.tap_data(f"s|m|{appt.id}|1", message_id=stranger.last.message_id)
    # Refused as an unknown appointment would be: the answer does not tell that it exists.
    assert stranger.answers[-1].text == "This button is not valid."


async def test_the_command_menu_is_set_in_every_language(bot: Bot) -> None:
    default = '{"type": "default"}'
    english = bot.emulator.commands[(default, "")]
    assert {c["command"] for c in english} == {"book", "my", "cancel", "language", "help", "privacy"}
    polish = bot.emulator.commands[(default, "pl")]
    assert {c["command"] for c in polish} == {"book", "my", "cancel", "language", "help", "privacy"}
    assert {c["description"] for c in polish}.isdisjoint({c["description"] for c in english})
