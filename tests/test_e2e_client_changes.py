"""End to end: the client moves a visit, cancels late, and the dialog's fixes (language, decline, filters)."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar

from bot.dialogs.mine import listing
from bot.dialogs.specialist import reminder_for_client
from tests.fixtures.bot import JONAS, Bot, tap_through
from tests.test_e2e_booking import _appointment, book_first_consultation, calendar_status
from tests.test_e2e_dialog import labels

# Wednesday 2 December 2026 in Warsaw (UTC+1): the booked visit at 09:00, the new time at 11:00.
OLD_START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
NEW_START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


async def _rows(bot: Bot, telegram_id: int):  # type: ignore[no-untyped-def]
    async with bot.runtime.store.tx() as tx:
        client_row = await tx.client_by_telegram(telegram_id)
        return await tx.client_appointments(client_row.id)


async def _ask_to_move(bot: Bot, telegram_id: int):  # type: ignore[no-untyped-def]
    """Book and confirm 09:00, then ask to move it to 11:00 the same day; returns the client and the visit."""
    client = bot.user(telegram_id, "Client")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    visit = await _appointment(bot, telegram_id)
    await client.send("/my")
    assert labels(client.last) == ["Move #1", "Cancel #1", "Earlier time? #1", "Message the specialist about #1"]
    await client.tap("Move #1")
    assert "Moving your appointment of Wednesday, December 2, 2026, 09:00" in client.last.text
    assert "Who would you like to see?" not in client.last.text  # the same specialist
    await tap_through(client, "2", "11:00", "On site")
    assert "Please check the new time" in client.last.text
    await client.tap("Ask to move it")
    assert "stays at its present time" in client.last.text
    request = bot.anna.last
    assert f"to move appointment #{visit.id}" in request.text
    assert "Now: Wednesday, December 2, 2026, 09:00" in request.text
    assert request.buttons == [["Approve", "Decline"]]
    return client, visit


async def test_a_move_approved_moves_the_visit_and_sends_the_new_ics(bot: Bot) -> None:
    client, visit = await _ask_to_move(bot, 7101)
    await client.send("/my")
    assert "Move to Wednesday, December 2, 2026, 11:00 requested" in client.last.text
    # Until the specialist decides, the old time stands (and is still confirmed in the calendar).
    assert await calendar_status(bot, "anna", visit.uid, want="CONFIRMED") == "CONFIRMED"
    (_, move) = await _rows(bot, 7101)
    assert await calendar_status(bot, "anna", move.uid, want="TENTATIVE") == "TENTATIVE"

    await bot.anna.tap("Approve")
    assert any("moved as you asked" in m.text and "11:00" in m.text for m in client.messages)
    _, data = client.documents[-1]
    event = Calendar.from_ical(data).walk("VEVENT")[0]
    assert str(event["UID"]) == visit.uid and event.decoded("DTSTART").astimezone(UTC) == NEW_START
    assert int(event["SEQUENCE"]) > visit.sequence

    moved, move = await _rows(bot, 7101)
    assert moved.id == visit.id and moved.start == NEW_START and moved.status == "confirmed"
    assert move.status == "moved"
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", move.uid, want=None) is None  # the held time's event is gone
    await client.send("/my")
    assert "11:00" in client.last.text and "requested" not in client.last.text


async def test_a_move_declined_keeps_the_old_time(bot: Bot) -> None:
    client, visit = await _ask_to_move(bot, 7102)
    await bot.anna.tap("Decline")
    await bot.anna.tap("This time is no longer available")
    told = client.last.text
    assert "could not move your appointment" in told and "stays as it was" in told and "09:00" in told
    kept, move = await _rows(bot, 7102)
    assert kept.start == OLD_START and kept.status == "confirmed" and move.status == "declined"
    assert await calendar_status(bot, "anna", visit.uid, want="CONFIRMED") == "CONFIRMED"


async def test_a_move_not_answered_in_time_lapses_and_the_old_time_stands(bot: Bot) -> None:
    client, _ = await _ask_to_move(bot, 7103)
    bot.clock.advance(hours=25)  # past the 24-hour approval timeout
    await bot.sweep()
    assert any("did not answer your request to move in time" in m.text for m in client.messages)
    kept, move = await _rows(bot, 7103)
    assert kept.start == OLD_START and kept.status == "confirmed" and move.status == "expired"


async def test_moving_after_the_deadline_shows_the_policy_and_the_contact(bot: Bot) -> None:
    client = bot.user(7104, "Client")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    bot.clock.advance(days=1, hours=12)  # two hours before the visit; Anna's limit is 24 hours
    await client.send("/my")
    await client.tap("Move #1")
    shown = client.last.text
    assert "too late to move" in shown and "Free cancellation until 24 hours" in shown
    assert "+48 58 123 45 67" in shown and client.last.buttons == []
    (visit,) = await _rows(bot, 7104)
    assert visit.start == OLD_START and visit.status == "confirmed"


async def test_a_polish_client_reads_the_polish_service_names(bot: Bot) -> None:
    client = bot.user(7105, "Zosia", lang="pl")
    await client.send("/book")
    await client.tap("City centre office")
    assert "Indywidualne" in labels(client.last)
    await client.tap("Indywidualne")
    assert any(label.startswith("Pierwsza konsultacja") for label in labels(client.last))


async def test_language_is_chosen_and_remembered(bot: Bot) -> None:
    client = bot.user(7106, "Klaus")
    await client.send("/language")
    assert "Deutsch" in labels(client.last) and "✓ English" in labels(client.last)
    await client.tap("Deutsch")
    assert "Deutsch" in client.last.text
    await client.send("/book")
    await client.tap("City centre office")
    assert "Einzeln" in labels(client.last)
    async with bot.runtime.store.tx() as tx:
        assert (await tx.client_by_telegram(7106)).language == "de"


async def test_first_available_after_a_decline_avoids_the_specialist_who_declined(bot: Bot) -> None:
    jonas = bot.emulator.user(JONAS, "Jonas")
    await jonas.send("/start")
    client = bot.user(7107, "Client")
    await client.send("/book")
    await tap_through(client, "City centre office", "Individual", "First consultation", "First available", "1")
    await tap_through(client, "10:00", "On site", "Skip")
    await client.send("Ida Nowak")
    await client.share_contact("48601234567")
    await tap_through(client, "Skip", "I agree", "Send request")
    assert "Specialist: Jonas Petraitis" in client.last.text
    await jonas.tap("Decline")
    await jonas.tap("Please choose another specialist")
    await client.tap("Choose another time")
    assert "Who would you like to see?" in client.last.text  # nobody preselected
    await client.tap("First available")
    days = labels(client.last)
    assert "1" not in days and "2" in days  # Jonas's Tuesday is not offered, Anna's Wednesday is
    await tap_through(client, "2", "10:00")
    assert "Specialist: Anna Kowalska" in client.last.text


async def test_a_part_of_the_day_without_times_is_not_offered(bot: Bot) -> None:
    client = bot.user(7108, "Client")
    await client.send("/book")
    await tap_through(client, "City centre office", "Individual", "First consultation", "Anna Kowalska", "2")
    # 09:00 to 16:00 every half hour: morning and afternoon have times, the evening has none.
    assert labels(client.last)[:2] == ["Morning", "Afternoon"] and "Evening" not in labels(client.last)
    await client.tap("Afternoon")
    assert "No free times" not in client.last.text


async def test_a_long_note_is_said_to_be_cut_and_a_bad_name_gets_one_message(bot: Bot) -> None:
    client = bot.user(7109, "Client")
    await client.send("/book")
    await tap_through(client, "City centre office", "Individual", "First consultation", "Anna Kowalska", "2")
    await tap_through(client, "09:00", "On site")
    await client.send("x" * 1200)
    assert "only its beginning was kept" in client.last.text and "first and last name" in client.last.text
    before = len(client.messages)
    await client.send("12345")
    replies = client.messages[before:]
    assert len(replies) == 1 and "does not look like a name" in replies[0].text
    assert replies[0].text.count("first and last name") == 1  # the refusal asks again itself


async def test_the_reminder_offers_move_and_cancel(bot: Bot) -> None:
    client = bot.user(7110, "Client")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    bot.clock.advance(hours=25, minutes=5)  # inside 24 hours before the visit
    await bot.sweep()
    assert "A reminder of your appointment" in client.last.text
    assert client.last.buttons == [["Move", "Cancel"]]
    await client.tap("Move")
    # Inside Anna's 24-hour limit: the policy and the contact, no pickers.
    assert "too late to move" in client.last.text and "kontakt@example.org" in client.last.text


async def test_slash_cancel_removes_the_dialogs_buttons(bot: Bot) -> None:
    client = bot.user(7111, "Client")
    await client.send("/book")
    await client.tap("City centre office")
    dialog = client.last
    await client.send("/cancel")
    assert "Booking cancelled" in client.last.text
    assert dialog.buttons == []  # the same message, edited


async def test_move_is_offered_where_the_rules_allow_it(bot: Bot) -> None:
    """The reminder and /my offer Move by one rule: a series visit moves alone, a group seat does not."""
    client = bot.user(7112, "Client")
    await book_first_consultation(client, note=None)
    await bot.anna.tap("Approve")
    appt = await _appointment(bot, 7112)
    practice = bot.runtime.practice

    def offered() -> tuple[bool, bool]:
        reminder = reminder_for_client(practice, appt, "en").markup
        mine = listing(practice, [appt], {}, "en", expand=appt.series_id).markup
        assert reminder is not None and mine is not None
        return (
            "Move" in [b.text for row in reminder.inline_keyboard for b in row],
            "Move #1" in [b.text for row in mine.inline_keyboard for b in row],
        )

    assert offered() == (True, True)
    appt.series_id = 1  # a visit of a series moves alone (detached row: nothing is written)
    assert offered() == (True, True)
    appt.series_id, appt.group_id = None, 1  # a seat keeps its session's time
    assert offered() == (False, False)
