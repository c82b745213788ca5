"""End to end: messages between a client and a specialist, and a chat visit relayed both ways."""

from __future__ import annotations

from sqlalchemy import func, select

from scheduling.db import MessageRow
from tests.fixtures.bot import JONAS, Bot, tap_through
from tests.test_e2e_booking import _appointment, book_first_consultation


async def stored_messages(bot: Bot) -> int:
    async with bot.runtime.store.tx() as tx:
        return int(await tx.session.scalar(select(func.count()).select_from(MessageRow)) or 0)


async def test_a_message_and_its_reply_go_round_and_are_not_kept(bot: Bot) -> None:
    client = bot.user(7301, "Jan")
    await book_first_consultation(client, note=None)
    request = bot.anna.last
    mention = [e for e in request.entities if e["type"] == "text_mention"]
    assert mention and mention[0]["user"]["id"] == 7301  # the specialist can open the client's profile
    await bot.anna.tap("Approve")
    appt = await _appointment(bot, 7301)

    await client.send("/my")
    await client.tap("Message the specialist about #1")
    assert "Type your message to Anna Kowalska" in client.last.text
    await client.send("May I bring my daughter along?")
    assert "Your message has been sent." in client.last.text
    got = bot.anna.last
    assert f"Message from Jan Nowak about #{appt.id}" in got.text and "May I bring my daughter along?" in got.text
    assert got.buttons == [["Reply"]]

    await bot.anna.tap("Reply")
    assert "Type your message to Jan Nowak" in bot.anna.last.text
    await bot.anna.send("Of course, see you on Wednesday.")
    reply = client.last
    assert "Message from Anna Kowalska about your appointment" in reply.text
    assert "Of course, see you on Wednesday." in reply.text and reply.buttons == [["Reply"]]
    assert await stored_messages(bot) == 0  # delivered messages are not kept

    stranger = bot.user(7302, "Eve")
    await stranger.send("/my")
    await stranger.tap_data(f"w|c|{appt.id}", message_id=stranger.last.message_id)
    assert "not valid" in stranger.answers[-1].text
    await stranger.tap_data(f"w|s|{appt.id}", message_id=stranger.last.message_id)
    assert "not valid" in stranger.answers[-1].text


async def test_a_chat_visit_is_relayed_both_ways_without_buttons(bot: Bot) -> None:
    jonas = bot.emulator.user(JONAS, "Jonas")
    await jonas.send("/start")
    client = bot.user(7303, "Ida")
    await client.send("/book")
    await tap_through(client, "Online", "Couples and family", "Short chat consultation", "3", "08:00", "Chat", "Skip")
    await client.send("Ida Nowak")
    await client.share_contact("48601234567")
    await tap_through(client, "Skip", "I agree", "Send request")
    await jonas.tap("Approve")
    confirmation = next(m.text for m in client.messages if "Your appointment is confirmed" in m.text)
    assert "write here" in confirmation

    await client.send("Is anyone there?")  # before the visit: not relayed
    assert "/book" in client.last.text
    bot.clock.advance(days=3, minutes=10)  # Thursday 08:10 in Warsaw: the visit is on
    await client.send("Hello, I am here.")
    assert jonas.last.text == "Ida Nowak: Hello, I am here." and jonas.last.buttons == []
    await jonas.send("Good morning, Ida. How was your week?")
    assert client.last.text == "Jonas Petraitis: Good morning, Ida. How was your week?"
    assert client.last.buttons == []
    bot.clock.advance(minutes=30)  # the visit is over
    await client.send("Thank you!")
    assert jonas.last.text != "Ida Nowak: Thank you!"
