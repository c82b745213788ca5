"""End to end: the specialist's workspace over the real Application, the emulator and a real Radicale."""

from __future__ import annotations

import json

import httpx

from tests.fixtures.bot import ADMIN, ANNA, JONAS, Bot
from tests.test_e2e_booking import book_first_consultation, calendar_status
from tgemu import TelegramUser


async def event_text(bot: Bot, specialist: str, uid: str) -> str | None:
    """The raw iCalendar text of an event on the server (None if absent), read with plain HTTP."""
    account = bot.runtime.accounts[specialist]
    url = account.calendar_url.rstrip("/") + f"/{uid}.ics"
    async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
        response = await http.get(url)
    return response.text if response.status_code == 200 else None


async def new_visit_for_new_client(
    anna: TelegramUser, *, time: str = "09:00", day: str = "2", next_month: bool = True
) -> None:
    """/new for someone the practice enters itself: name, phone, no e-mail; first consultation on site."""
    await anna.send("/new")
    assert "Whom is the visit for?" in anna.last.text
    await anna.tap("+ New client")
    await anna.send("Ewa Zielińska")
    await anna.send("+48 601 555 444")
    await anna.tap("Skip")
    await pick_visit(anna, time=time, day=day, next_month=next_month)


async def pick_visit(anna: TelegramUser, *, time: str = "09:00", day: str = "2", next_month: bool = True) -> None:
    """First consultation at the centre, on site; the day in December (or this November) and the time."""
    await anna.tap("First consultation")
    await anna.tap("City centre office")
    await anna.tap("On site")
    if next_month:
        await anna.tap("›")
    await anna.tap(day)
    if time in [b for row in anna.last.buttons for b in row]:
        await anna.tap(time)
    else:
        await anna.send(time)


async def test_new_visit_for_a_client_without_telegram_is_confirmed(bot: Bot) -> None:
    await new_visit_for_new_client(bot.anna)
    await bot.anna.tap("First consultation")  # the flag
    assert "✓ First consultation" in str(bot.anna.last.buttons)
    await bot.anna.tap("Continue")
    summary = bot.anna.last.text
    assert "Please check the visit" in summary and "Ewa Zielińska" in summary and "No conflicts." in summary
    await bot.anna.tap("Save")
    card = bot.anna.last.text
    assert "Saved." in card and "confirmed" in card and "+48601555444" in card
    assert "Flags: First consultation" in card
    assert "does not use the bot" in card
    async with bot.runtime.store.tx() as tx:
        (client,) = await tx.find_clients("Zielińska")
        (appt,) = await tx.client_appointments(client.id)
    assert client.telegram_id is None and client.created_by == "specialist:9001"
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", appt.uid, want="CONFIRMED") == "CONFIRMED"
    text = await event_text(bot, "anna", appt.uid)
    assert text is not None and "First consultation" in text  # the service name
    assert "ASAP" not in text and "Flag" not in text


async def test_new_visit_for_a_bot_client_is_a_proposal_they_accept(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)  # Jan Nowak, Wed 2 Dec 09:00, requested
    await bot.anna.send("/new")
    await bot.anna.send("Nowak")
    await bot.anna.tap("Jan Nowak")
    await pick_visit(bot.anna, time="11:00")
    await bot.anna.tap("Continue")
    assert "No conflicts." in bot.anna.last.text
    await bot.anna.tap("Save")
    assert "proposed, waiting for the client" in bot.anna.last.text
    proposal = client.last
    assert "The practice has booked a visit for you" in proposal.text
    assert proposal.buttons == [["Accept", "Decline"]]
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1001)
        appts = await tx.client_appointments(row.id)
    proposed = appts[-1]
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", proposed.uid, want="TENTATIVE") == "TENTATIVE"
    await client.tap("Accept")
    assert "You accepted this visit." in client.messages[-3].text or any(
        "You accepted this visit." in m.text for m in client.messages
    )
    assert client.documents  # the .ics
    assert "Jan Nowak accepted the proposed visit." in bot.anna.last.text
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", proposed.uid, want="CONFIRMED") == "CONFIRMED"


async def test_a_declined_proposal_frees_the_time(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)
    await bot.anna.send("/new")
    await bot.anna.send("601234567")
    await bot.anna.tap("Jan Nowak")
    await pick_visit(bot.anna, time="13:00")
    await bot.anna.tap("Continue")
    await bot.anna.tap("Save")
    await client.tap("Decline")
    assert "declined the proposed visit" in bot.anna.last.text
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1001)
        appts = await tx.client_appointments(row.id)
    assert appts[-1].status == "declined"
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", appts[-1].uid, want=None) is None


async def test_every_warning_at_once_and_save_anyway(bot: Bot) -> None:
    """Today (Monday) 19:15: after Anna's hours (outside any schedule), inside the 12 h notice, off the grid."""
    await new_visit_for_new_client(bot.anna, day="(30)", time="19:15", next_month=False)
    await bot.anna.tap("Continue")
    text = bot.anna.last.text
    assert "It is sooner than the minimum notice." in text
    assert "It is outside any schedule." in text
    assert "It is not one of the service's usual start times." in text
    assert "Save anyway" in str(bot.anna.last.buttons)
    await bot.anna.tap("Save anyway")
    card = bot.anna.last.text
    assert "Saved." in card
    assert "saved despite: minimum notice, unusual start time, outside any schedule" in card


async def test_the_past_another_location_and_beyond_the_horizon_are_warned_about(bot: Bot) -> None:
    await new_visit_for_new_client(bot.anna, day="(30)", time="07:00", next_month=False)
    await bot.anna.tap("Continue")
    assert "It is in the past." in bot.anna.last.text
    await bot.anna.tap("Cancel")
    assert "Nothing was saved" in bot.anna.last.text
    # Monday 7 December 15:00: Anna works online then, not at the centre.
    await bot.anna.send("/new")
    await bot.anna.send("Zielińska")
    await bot.anna.tap("Ewa Zielińska")
    await pick_visit(bot.anna, day="7", time="15:00")
    await bot.anna.tap("Continue")
    assert "It is outside this location's schedule." in bot.anna.last.text
    assert "It is outside any schedule." not in bot.anna.last.text
    # Anna takes bookings 60 days ahead: Wednesday 3 February 2027 is beyond that.
    await bot.anna.tap("« Back")
    await bot.anna.tap("« Back")
    await bot.anna.tap("« Back")
    await bot.anna.tap("›")
    await bot.anna.tap("›")
    await bot.anna.tap("(3)")
    await bot.anna.send("09:00")
    await bot.anna.tap("Continue")
    assert "It is beyond the booking horizon." in bot.anna.last.text


async def test_a_collision_with_another_appointment_blocks(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)  # Wed 2 Dec 09:00
    await new_visit_for_new_client(bot.anna, time="09:30")
    await bot.anna.tap("Continue")
    text = bot.anna.last.text
    assert "It collides with another appointment: First consultation, Jan Nowak" in text
    assert "cannot be saved" in text
    labels = [b for row in bot.anna.last.buttons for b in row]
    assert "Save" not in labels and "Save anyway" not in labels
    await bot.anna.tap("Choose another time")
    await bot.anna.tap("11:00")
    await bot.anna.tap("Continue")
    await bot.anna.tap("Save")
    assert "Saved." in bot.anna.last.text


async def test_a_private_event_is_named_without_its_title(bot: Bot) -> None:
    account = bot.runtime.accounts["anna"]
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:dentist-1\r\n"
        "DTSTAMP:20261101T000000Z\r\nDTSTART:20261202T090000Z\r\nDTEND:20261202T100000Z\r\n"
        "SUMMARY:Dentist appointment\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    async with httpx.AsyncClient(auth=(account.username, account.password)) as http:
        url = account.calendar_url.rstrip("/") + "/dentist-1.ics"
        response = await http.put(url, content=ics, headers={"Content-Type": "text/calendar"})
        assert response.status_code in (201, 204)
    await new_visit_for_new_client(bot.anna, time="10:00")
    await bot.anna.tap("Continue")
    text = bot.anna.last.text
    assert "It collides with a private event in the calendar." in text
    assert "Dentist" not in text
    await bot.anna.tap("Save anyway")
    assert "saved despite: collides with a private event" in bot.anna.last.text


async def test_a_specialist_is_refused_on_a_colleagues_card_and_forged_buttons(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1001)
        (appt,) = await tx.client_appointments(row.id)
    jonas = bot.user(JONAS, "Jonas")
    await jonas.send("/start")
    for data in (f"k|c|{appt.id}", f"k|mv|{appt.id}", f"k|del|{appt.id}", f"k|f|{appt.id}|asap", f"k|cl|{row.id}"):
        await jonas.tap_data(data)
        assert jonas.answers[-1].text == "Only the appointment's specialist can do this.", data
    await jonas.tap_data("k|zz|1")
    assert jonas.answers[-1].text == "Only the appointment's specialist can do this."
    stranger = bot.user(1002, "Eve")
    await stranger.send("/start")
    await stranger.tap_data(f"k|c|{appt.id}")
    assert stranger.answers[-1].text == "This button is not valid."
    # Anna is not an admin: no Delete on her card, and a forged delete is refused.
    await bot.anna.tap_data(f"k|c|{appt.id}")
    assert "Delete" not in str(bot.anna.last.buttons)
    await bot.anna.tap_data(f"k|dely|{appt.id}")
    assert bot.anna.answers[-1].text == "Only the appointment's specialist can do this."
    async with bot.runtime.store.tx() as tx:
        assert (await tx.get_appointment(appt.id)).status == "requested"


async def test_an_admin_deletes_an_appointment(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    await book_first_consultation(client)
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1001)
        (appt,) = await tx.client_appointments(row.id)
    await bot.drain_outbox()
    admin = bot.user(ADMIN, "Admin")
    await admin.send("/agenda")
    await admin.tap("#1 Jan Nowak")
    await admin.tap("Delete")
    assert "Delete appointment" in admin.last.text
    await admin.tap("Yes, delete it")
    assert f"Appointment #{appt.id} was deleted." in admin.last.text
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", appt.uid, want=None) is None
    async with bot.runtime.store.tx() as tx:
        stored = await tx.get_appointment(appt.id)
        history = await tx.transitions(appt.id)
        assert await tx.client_appointments(row.id) == []
    assert stored.status == "deleted" and stored.note is None
    assert history[-1].actor == f"admin:{ADMIN}" and history[-1].to_status == "deleted"


async def _approved_visit(bot: Bot, client: TelegramUser):  # type: ignore[no-untyped-def]
    """Jan Nowak's first consultation, Wed 2 Dec 09:00, approved; returns the appointment row."""
    await book_first_consultation(client)
    await bot.anna.tap("Approve")
    await bot.drain_outbox()
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(client.id)
        (appt,) = await tx.client_appointments(row.id)
    return appt


async def test_move_telling_the_client_with_a_reason(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    appt = await _approved_visit(bot, client)
    documents = len(client.documents)
    await bot.anna.send("/agenda")
    await bot.anna.tap("#1 Jan Nowak")
    await bot.anna.tap("Move")
    await bot.anna.tap("2")
    await bot.anna.tap("14:00")
    summary = bot.anna.last.text
    assert "Move appointment" in summary and "No conflicts." in summary
    assert "✓ Tell the client" in str(bot.anna.last.buttons)
    await bot.anna.send("I have a training in the morning.")
    assert "Reason for the client: I have a training in the morning." in bot.anna.last.text
    await bot.anna.tap("Move")
    card = bot.anna.last.text
    assert "Moved." in card and "moved from 2 Dec 09:00 to 2 Dec 14:00" in card
    assert "reason: I have a training in the morning." in card
    told = client.last if not client.last.document else client.messages[-2]
    assert "moved your appointment to a new time" in told.text
    assert "Reason: I have a training in the morning." in told.text and "14:00" in told.text
    assert len(client.documents) == documents + 1  # a new .ics
    await bot.drain_outbox()
    text = await event_text(bot, "anna", appt.uid)
    assert text is not None and "SEQUENCE:2" in text and "T140000" in text


async def test_move_without_telling_the_client(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    appt = await _approved_visit(bot, client)
    before = len(client.messages)
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap("Move")
    await bot.anna.tap("2")
    await bot.anna.tap("15:00")
    await bot.anna.tap("✓ Tell the client")
    assert "Do not tell the client" in str(bot.anna.last.buttons)
    await bot.anna.tap("Move")
    assert "client not told" in bot.anna.last.text
    assert len(client.messages) == before
    async with bot.runtime.store.tx() as tx:
        moved = await tx.get_appointment(appt.id)
    assert moved.start.hour == 14  # 15:00 in Warsaw


async def test_cancel_with_a_reason_offers_other_times(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    appt = await _approved_visit(bot, client)
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap("Cancel visit")
    assert "Cancel appointment" in bot.anna.last.text
    await bot.anna.send("I am ill.")
    await bot.anna.tap("Cancel the visit")
    assert "Cancelled." in bot.anna.last.text and "reason: I am ill." in bot.anna.last.text
    told = client.last
    assert "had to cancel your appointment" in told.text and "Reason: I am ill." in told.text
    assert told.buttons == [["Choose another time"]]
    await client.tap("Choose another time")
    assert "First consultation" in client.last.text  # a fresh booking with the same service and specialist
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", appt.uid, want=None) is None


async def test_notes_and_flags_never_reach_the_client_or_the_calendar(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    appt = await _approved_visit(bot, client)
    seen = [m.text for m in client.messages]
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap("ASAP: wants an earlier time")
    assert "Flags: ASAP: wants an earlier time" in bot.anna.last.text
    await bot.anna.tap("Add a note")
    await bot.anna.send("Mentions trouble sleeping; SECRET-NOTE")
    assert "Note saved." in bot.anna.last.text and "SECRET-NOTE" in bot.anna.last.text
    await bot.drain_outbox()
    # Moving rewrites the event: still without notes or flags.
    await bot.anna.tap("Move")
    await bot.anna.tap("2")
    await bot.anna.tap("14:00")
    await bot.anna.tap("Move")
    await bot.drain_outbox()
    text = await event_text(bot, "anna", appt.uid)
    assert text is not None and "T140000" in text
    assert "SECRET" not in text and "ASAP" not in text and "earlier time" not in text
    for message in client.messages:
        assert "SECRET" not in message.text and "ASAP" not in message.text
    for _name, data in client.documents:
        assert b"SECRET" not in data and b"ASAP" not in data
    assert len(client.messages) > len(seen)  # the client did hear about the move


async def test_reassign_approved_by_the_colleague(bot: Bot) -> None:
    """Anna hands Wednesday's 09:00 to Jonas; Jonas accepts; the event moves to his calendar."""
    client = bot.user(1001, "Jan")
    jonas = bot.user(JONAS, "Jonas")
    await jonas.send("/start")
    appt = await _reassignable(bot, client)
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap("Reassign")
    assert bot.anna.last.buttons == [["Jonas Petraitis"], ["« Back"]]
    await bot.anna.tap("Jonas Petraitis")
    assert "Offered to Jonas Petraitis" in bot.anna.last.text
    assert "asks you to take over" in jonas.last.text
    await jonas.tap("Take over")
    assert "Specialist: Jonas Petraitis" in jonas.last.text
    assert "took over the appointment" in bot.anna.last.text
    assert "will be with Jonas Petraitis" in "\n".join(m.text for m in client.messages[-3:])
    await bot.drain_outbox()
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", appt.uid, want=None) is None
    assert await calendar_status(bot, "jonas", appt.uid, want="CONFIRMED") == "CONFIRMED"
    # Anna no longer acts on it.
    await bot.anna.tap_data(f"k|mv|{appt.id}")
    assert bot.anna.answers[-1].text == "Only the appointment's specialist can do this."


async def test_reassign_refused_by_the_colleague(bot: Bot) -> None:
    client = bot.user(1001, "Jan")
    jonas = bot.user(JONAS, "Jonas")
    await jonas.send("/start")
    appt = await _reassignable(bot, client)
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap("Reassign")
    await bot.anna.tap("Jonas Petraitis")
    await jonas.tap("Refuse")
    assert "did not take over" in bot.anna.last.text
    async with bot.runtime.store.tx() as tx:
        kept = await tx.get_appointment(appt.id)
    assert kept.specialist_id == "anna" and kept.reassign_to is None
    await bot.drain_outbox()
    assert await calendar_status(bot, "anna", appt.uid, want="CONFIRMED") == "CONFIRMED"


async def _reassignable(bot: Bot, client: TelegramUser):  # type: ignore[no-untyped-def]
    """A confirmed visit of Anna's at a time Jonas also works: Tuesday 8 Dec 11:00, booked with /new."""
    await client.send("/start")
    await client.tap("Cancel")
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(client.id)
        await tx.upsert_client(client.id, name="Jan Nowak", phone="+48601234567")
    await bot.anna.send("/new")
    await bot.anna.send("Nowak")
    await bot.anna.tap("Jan Nowak")
    await pick_visit(bot.anna, day="(8)", time="11:00")
    await bot.anna.tap("Continue")
    await bot.anna.tap("Save anyway")  # Tuesday is not Anna's day
    await client.tap("Accept")
    await bot.drain_outbox()
    async with bot.runtime.store.tx() as tx:
        (appt,) = await tx.client_appointments(row.id)
    assert appt.status == "confirmed"
    return appt


async def ewa_gives_her_details(ewa: TelegramUser, name: str) -> None:
    """Ewa starts the bot, asks for a psychotherapy session on Friday 4 Dec 12:00, gives name and phone and agrees.

    Her details reach her record (and are matched with the practice's records) only once she agrees.
    """
    await ewa.send("/start")
    await ewa.tap("City centre office")
    await ewa.tap("Individual")
    await ewa.tap("Psychotherapy session")  # only Anna offers it
    await ewa.tap("4")
    await ewa.tap("12:00")  # Friday: on site only
    await ewa.tap("Skip")
    await ewa.send(name)
    await ewa.share_contact("48601555444")
    await ewa.tap("Skip")  # no e-mail
    await ewa.tap("I agree")


async def test_a_matching_record_is_linked_when_the_client_starts_the_bot(bot: Bot) -> None:
    await new_visit_for_new_client(bot.anna)
    await bot.anna.tap("Continue")
    await bot.anna.tap("Save")
    ewa = bot.user(1003, "Ewa")
    await ewa_gives_her_details(ewa, "ewa  zielińska")
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1003)
        appts = await tx.client_appointments(row.id)
        assert await tx.find_clients("Zielińska") == [row]
    assert len(appts) == 1 and appts[0].source == "staff"
    await ewa.tap("Send request")
    await ewa.send("/my")
    assert "Wednesday, December 2, 2026" in ewa.last.text  # the visit Anna entered


async def test_two_matching_records_are_not_linked_and_admins_are_asked(bot: Bot) -> None:
    for _ in range(2):
        await new_visit_for_new_client(bot.anna, time="09:00" if _ == 0 else "11:00")
        await bot.anna.tap("Continue")
        await bot.anna.tap("Save")
    admin = bot.user(ADMIN, "Admin")
    await admin.send("/start")
    ewa = bot.user(1003, "Ewa")
    await ewa_gives_her_details(ewa, "Ewa Zielińska")
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1003)
        assert await tx.client_appointments(row.id) == []
        records = [r for r in await tx.find_clients("Zielińska") if r.telegram_id is None]
    assert len(records) == 2
    question = admin.last
    assert "matches more than one record" in question.text
    assert question.buttons[-1] == ["Keep them apart"]
    first = min(r.id for r in records)
    assert question.buttons[0] == [f"Open record #{first}", f"Link to record #{first}"]
    await admin.tap("Keep them apart")
    assert "Kept apart" in admin.last.text


async def test_an_admin_links_one_of_two_matching_records(bot: Bot) -> None:
    for time in ("09:00", "11:00"):
        await new_visit_for_new_client(bot.anna, time=time)
        await bot.anna.tap("Continue")
        await bot.anna.tap("Save")
    admin = bot.user(ADMIN, "Admin")
    await admin.send("/start")
    ewa = bot.user(1003, "Ewa")
    await ewa_gives_her_details(ewa, "Ewa Zielińska")
    async with bot.runtime.store.tx() as tx:
        first, second = sorted(r.id for r in await tx.find_clients("Zielińska") if r.telegram_id is None)
    await admin.tap(f"Open record #{second}")
    assert "11:00" in admin.last.text and "Does not use the bot yet." in admin.last.text
    question = next(m for m in reversed(admin.messages) if "matches more than one record" in m.text)
    await admin.tap_data(f"k|ln|{_client_id(question)}|{second}", message_id=question.message_id)
    answered = next(m for m in admin.messages if m.message_id == question.message_id)
    assert "Linked: Ewa Zielińska" in answered.text and not answered.inline_keyboard
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(1003)
        (linked,) = await tx.client_appointments(row.id)
        assert await tx.get_client(second) is None and await tx.get_client(first) is not None
    assert linked.start.isoformat() == "2026-12-02T10:00:00+00:00"  # the 11:00 visit, not her twin's


def _client_id(message) -> int:  # type: ignore[no-untyped-def]
    """The bot user's client id from the link question's "Keep them apart" button."""
    data = message.inline_keyboard[-1][0]["callback_data"]
    return int(data.split("|")[2])


async def test_staff_are_written_to_in_their_own_language(bot: Bot) -> None:
    """Jonas's Telegram is in German: his agenda, help and the handover he is offered are German."""
    jonas = bot.user(JONAS, "Jonas", lang="de")
    await jonas.send("/start")
    await jonas.send("/agenda")
    assert "Keine Termine" in jonas.last.text and jonas.last.buttons == [["+ Neuer Termin"]]
    await jonas.send("/help")
    assert "/new: einen Termin für einen Klienten buchen" in jonas.last.text
    client = bot.user(1001, "Jan")
    appt = await _reassignable(bot, client)
    await bot.anna.tap_data(f"k|c|{appt.id}")
    await bot.anna.tap("Reassign")
    await bot.anna.tap("Jonas Petraitis")
    assert "bittet Sie, diesen Termin zu übernehmen" in jonas.last.text
    assert jonas.last.buttons == [["Übernehmen", "Ablehnen"]]
    assert "took over" not in bot.anna.last.text  # Anna's own messages stay English
    await jonas.tap("Ablehnen")
    assert "did not take over the appointment" in bot.anna.last.text


async def test_staff_get_their_own_command_menu(bot: Bot) -> None:
    scope = json.dumps({"chat_id": ANNA, "type": "chat"}, sort_keys=True)
    english = [c["command"] for c in bot.emulator.commands[(scope, "")]]
    assert english[:3] == ["agenda", "new", "find"] and "book" in english
    german = bot.emulator.commands[(scope, "de")]
    assert german[1]["description"] == "Einen Termin für einen Klienten buchen"
    default = json.dumps({"type": "default"}, sort_keys=True)
    assert "new" not in [c["command"] for c in bot.emulator.commands[(default, "")]]


async def test_typed_times_across_the_clock_change(bot: Bot) -> None:
    """Sunday 28 March 2027: Warsaw skips 02:00-03:00; 02:30 is refused, 03:30 is 01:30 UTC."""
    await bot.anna.send("/new")
    await bot.anna.send("Nowak")
    await bot.anna.tap("+ New client")
    await bot.anna.send("Ewa Zielińska")
    await bot.anna.send("+48 601 555 444")
    await bot.anna.tap("Skip")
    await bot.anna.tap("First consultation")
    await bot.anna.tap("City centre office")
    await bot.anna.tap("On site")
    for _month in range(4):
        await bot.anna.tap("›")
    assert "March 2027" in str(bot.anna.last.buttons)
    await bot.anna.tap("(28)")
    await bot.anna.send("2:30")
    assert "That time does not exist on this day" in bot.anna.last.text
    await bot.anna.send("soon")
    assert "Please type the time as HH:MM" in bot.anna.last.text
    await bot.anna.send("03:30")
    await bot.anna.tap("Continue")
    assert "March 28, 2027, 03:30" in bot.anna.last.text
    await bot.anna.tap("Save anyway")
    async with bot.runtime.store.tx() as tx:
        (client,) = await tx.find_clients("Zielińska")
        (appt,) = await tx.client_appointments(client.id)
    assert appt.start.isoformat() == "2027-03-28T01:30:00+00:00"
