"""End to end, as an attacker would try it: groups, forged and oversized buttons, probing for appointment ids."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.fixtures.bot import ADMIN, JONAS, Bot, e2e_practice, running_bot, tap_through
from tests.test_e2e_booking import _appointment, book_first_consultation
from tests.test_e2e_waitlist import _one_slot_a_week, offers, two_waiting_then_a_cancellation
from tgemu import BotApiEmulator, TelegramUser

NOT_VALID = "This button is not valid."
LAPSED = (
    "Too late: the visit's time has begun, so the request has lapsed and nothing was confirmed. The client is told."
)
GROUP = -100123456


def _calls(bot: Bot) -> Counter[str]:
    """Every Bot API call the bot made so far, but its polling."""
    calls = Counter(bot.emulator.requests)
    del calls["getUpdates"]
    return calls


async def test_a_group_chat_gets_nothing(bot: Bot) -> None:
    member = bot.user(1301, "Member")
    before = _calls(bot)
    chat = {"id": GROUP, "type": "supergroup", "title": "Neighbours"}
    for i, text in enumerate(["/start", "/book", "/my", "/help", "hello, anyone booking here?"], start=1):
        message = {"message_id": i, "from": member.profile, "chat": chat, "date": 1, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
        bot.emulator.push_update("message", message)
    # A button under a message in the group (forwarded there, or forged) is not answered either.
    bot.emulator.push_update(
        "callback_query",
        {
            "id": "77",
            "from": member.profile,
            "message": {"message_id": 9, "from": bot.emulator.bot, "chat": chat, "date": 1, "text": "x"},
            "chat_instance": "1",
            "data": "b|cancel",
        },
    )
    channel = {"id": GROUP - 1, "type": "channel", "title": "News"}
    bot.emulator.push_update("channel_post", {"message_id": 1, "chat": channel, "date": 1, "text": "/start"})
    await bot.emulator.wait_idle()
    assert _calls(bot) == before  # not one call: no answer, no hint, no error report
    async with bot.runtime.store.tx() as tx:
        assert await tx.client_by_telegram(member.id) is None  # and nothing recorded of who wrote
    # The same person in a private chat is served as usual.
    await member.send("/start")
    assert "Where would you like to meet?" in member.last.text


async def _answer(user: TelegramUser, data: str) -> tuple[str | None, bool]:
    await user.tap_data(data)
    answer = user.answers[-1]
    assert answer.data == data
    return answer.text, answer.show_alert


async def test_forged_numbers_and_oversized_data_are_refused_like_stale_buttons(bot: Bot) -> None:
    client = bot.user(1302, "Mallory")
    await client.send("/start")
    await client.tap("City centre office")
    await client.tap("Individual")
    await client.tap("First consultation")
    await client.tap("Anna Kowalska")
    await client.tap("2")
    assert "09:00" in [b for row in client.last.buttons for b in row]  # the time step
    huge = "9" * 40
    forged = [
        f"b|time|{huge}",  # datetime.fromtimestamp overflowed
        "b|time|99999999999",
        f"b|again|{huge}",
        f"b|pick|{huge}",
        f"m|c|{huge}",
        "m|c|4294967296",  # past a 32-bit id column
        f"w|c|{huge}",
        f"q|y|{huge}",
        f"p|y|{huge}",
        f"s|a|{huge}",
        f"k|c|{huge}",
        "m|c|²",  # a digit to str.isdigit(), not to int()
        "m|c|" + "1" * 70,  # longer than Telegram's 64 bytes
        "b|" + "|".join("x" * 9),  # more fields than any button has
    ]
    for data in forged:
        text, alert = await _answer(client, data)
        assert (text, alert) == (NOT_VALID, True), data
    assert not [m for m in client.messages if "Something went wrong" in m.text]
    # The dialog is untouched: the real time button still works.
    await client.tap("09:00")
    assert "How would you like to meet?" in client.last.text or "On site" in str(client.last.buttons)


async def test_forged_buttons_do_not_reveal_whether_an_appointment_exists(bot: Bot) -> None:
    owner = bot.user(1303, "Jan")
    await book_first_consultation(owner, note=None)
    real = (await _appointment(bot, 1303)).id
    unknown = real + 1000
    jonas = bot.emulator.user(JONAS, "Jonas")
    await jonas.send("/start")
    stranger = bot.user(1304, "Mallory")
    await stranger.send("/start")
    for person, prefixes in (
        (stranger, ["s|a", "s|d", "s|x", "m|c", "m|mv", "w|c", "w|s", "p|y", "k|c", "b|again"]),
        (jonas, ["s|a", "s|d", "s|t", "k|c", "k|a", "w|s"]),
    ):
        for prefix in prefixes:
            answers = {await _answer(person, f"{prefix}|{real}"), await _answer(person, f"{prefix}|{unknown}")}
            assert len(answers) == 1, (person.id, prefix, answers)
    assert (await _appointment(bot, 1303)).status == "requested"  # nobody changed it


async def _ask_for(client: TelegramUser, time: str) -> None:
    """The whole dialog up to Send request: first consultation with Anna on Wednesday 2 December."""
    await client.send("/book")
    await client.tap("City centre office")
    await client.tap("Individual")
    await client.tap("First consultation")
    await client.tap("Anna Kowalska")
    await client.tap("2")
    await client.tap(time)
    await client.tap("On site")
    await client.tap("Skip")  # no note
    if "first and last name" in client.last.text:
        await client.send("Jan Nowak")
        await client.share_contact("48601234567")
        await client.tap("Skip")  # no e-mail
        await client.tap("I agree")
    assert "Please check your request" in client.last.text
    await client.tap("Send request")


async def test_fifteen_requests_from_one_client_make_two(bot: Bot) -> None:
    client = bot.user(1310, "Flood")
    await client.send("/start")
    for time in ("09:00", "10:00"):
        await _ask_for(client, time)
        assert "Your request has been sent" in client.last.text
    await _ask_for(client, "11:00")  # the third
    refused = client.last
    assert "You already have as many requests waiting for an answer as the practice takes at once (2)" in refused.text
    assert ["Send request"] in refused.buttons  # nothing lost: it can go once an answer comes
    for _ in range(12):
        await client.tap("Send request")
    assert "Please wait a minute" in client.last.text
    async with bot.runtime.store.tx() as tx:
        row = await tx.client_by_telegram(client.id)
        appts = await tx.client_appointments(row.id)
    assert len(appts) == 2 and {a.status for a in appts} == {"requested"}
    assert len([m for m in bot.anna.messages if "New appointment request" in m.text]) == 2

    # Anna, a specialist, decides one by one; an admin may decline all of the client's requests at once.
    await bot.anna.tap_data(f"k|c|{appts[0].id}")
    assert "Decline all" not in str(bot.anna.last.buttons)
    admin = bot.emulator.user(ADMIN, "Admin")
    await admin.send("/start")
    await admin.tap_data(f"k|c|{appts[0].id}")
    await admin.tap("Decline all of this client's requests")
    assert "(2 now)" in admin.last.text
    told_before = len(client.messages)
    await admin.tap("Yes, decline them all")
    assert "Declined 2 requests of Jan Nowak" in admin.last.text
    told = client.messages[told_before:]
    assert len(told) == 1 and "the practice has declined your requests" in told[0].text  # told once
    assert "09:00" in told[0].text and "10:00" in told[0].text
    async with bot.runtime.store.tx() as tx:
        assert {(await tx.get_appointment(a.id)).status for a in appts} == {"declined"}
    requests = [m for m in bot.anna.messages if "New appointment request" in m.text or "declined" in m.text]
    assert len(requests) == 2 and all(m.buttons == [] for m in requests)  # Anna's request messages closed

    # With nothing pending and a minute gone by, the summary still on screen can be sent.
    bot.clock.advance(minutes=1)
    await client.tap_data("b|send", refused.message_id)
    (summary,) = [m for m in client.messages if m.message_id == refused.message_id]  # edited in place
    assert "Your request has been sent" in summary.text


async def test_approving_after_the_start_is_refused_at_once(tmp_path: Path, emulator: BotApiEmulator) -> None:
    # A long approval timeout: the request is still open at its start, until a sweep expires it.
    async with running_bot(tmp_path, emulator, practice=e2e_practice(approval_timeout_hours=100)) as bot:
        await bot.anna.send("/start")
        first, second = bot.user(1320, "Jan"), bot.user(1321, "Ola")
        await book_first_consultation(first, note=None)  # Wednesday 2 December, 09:00 in Warsaw
        await _ask_for(second, "10:00")
        early, late = await _appointment(bot, 1320), await _appointment(bot, 1321)
        request = next(m for m in bot.anna.messages if "New appointment request" in m.text)
        bot.clock.now = early.start + timedelta(minutes=5)  # the first visit has begun; no sweep has run

        await bot.anna.tap_data(f"s|a|{early.id}", request.message_id)  # Approve on the request message
        assert bot.anna.answers[-1].text == LAPSED and bot.anna.answers[-1].show_alert
        assert (await _appointment(bot, 1320)).status == "expired"
        assert "did not answer your request in time" in first.last.text  # told at once, and once
        assert not [m for m in first.messages if "confirmed" in m.text]
        assert next(m for m in bot.anna.messages if m.message_id == request.message_id).buttons == []
        assert (await _appointment(bot, 1321)).status == "requested"  # its time has not come yet

        admin = bot.emulator.user(ADMIN, "Admin")
        await admin.send("/start")
        await admin.tap_data(f"k|c|{late.id}")
        bot.clock.now = late.start + timedelta(minutes=5)
        await admin.tap("Approve")  # on the appointment card
        assert admin.answers[-1].text == LAPSED
        assert (await _appointment(bot, 1321)).status == "expired"
        assert "Approve" not in str(admin.last.buttons)
        await bot.sweep()
        told = [m for m in second.messages if "did not answer your request in time" in m.text]
        assert len(told) == 1  # the sweep does not tell them again


async def test_taking_freed_time_past_the_limit_passes_it_on(tmp_path: Path, emulator: BotApiEmulator) -> None:
    def edit(data: dict[str, Any]) -> None:
        _one_slot_a_week(data)
        data["limits"] = {"pending_requests": 1, "requests_per_day": 5}

    async with running_bot(tmp_path, emulator, practice=e2e_practice(edit)) as bot:
        first, second = await two_waiting_then_a_cancellation(bot, 1330)
        assert len(offers(first)) == 1 and offers(second) == []
        offer = first.last
        # Meanwhile the first asks for another visit, which waits for Anna: their one pending request.
        await first.send("/book")
        await tap_through(first, "City centre office", "Individual", "First consultation", "Anna Kowalska", "23")
        await tap_through(first, "09:00", "On site", "Skip", "Send request")
        assert "Your request has been sent" in first.last.text
        await first.tap_data(offer.button_data[0][0], message_id=offer.message_id)
        (shown,) = [m for m in first.messages if m.message_id == offer.message_id]
        assert "as many requests waiting for an answer as the practice takes at once (1)" in shown.text
        assert len(offers(second)) == 1  # the time went on to the next one waiting
