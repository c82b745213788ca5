"""LeanBot: keyboards written out directly and their echoes unparsed, with the same calls and answers as PTB's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup
from telegram.constants import ParseMode

from bot.telegram_bot import LeanBot, drop_tapped_keyboard, plain_keyboard, results_unread
from bot.telegram_http import AiohttpRequest
from tgemu import BotApiEmulator

CHAT = 1001


def _plain(tag: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(f"{n}", callback_data=f"b|{tag}|{n}") for n in range(3)],
            [InlineKeyboardButton("Å", callback_data="x")],
        ]
    )


@pytest.fixture
async def lean(emulator: BotApiEmulator) -> AsyncIterator[LeanBot]:
    await emulator.user(CHAT, "Ada").send("hi", wait=False)
    bot = LeanBot(
        emulator.token,
        base_url=emulator.base_url,
        base_file_url=emulator.base_file_url,
        request=AiohttpRequest(connection_pool_size=4),
        get_updates_request=AiohttpRequest(),
    )
    async with bot:
        yield bot


def test_plain_keyboard_is_what_ptb_writes() -> None:
    markup = _plain("a")
    assert plain_keyboard(markup) == markup.to_dict()["inline_keyboard"]
    # Anything but text and string callback data goes PTB's own way.
    assert plain_keyboard(InlineKeyboardMarkup([[InlineKeyboardButton("Site", url="https://example.org/")]])) is None
    assert plain_keyboard(ReplyKeyboardMarkup([[KeyboardButton("Share", request_contact=True)]])) is None
    assert plain_keyboard(None) is None


async def test_sent_and_edited_messages_carry_the_keyboard(emulator: BotApiEmulator, lean: LeanBot) -> None:
    sent = await lean.send_message(CHAT, "<b>Pick</b>", parse_mode=ParseMode.HTML, reply_markup=_plain("a"))
    assert sent.reply_markup == _plain("a") and sent.text == "Pick" and sent.entities[0].type == "bold"
    assert emulator.user(CHAT, "Ada").last.button_data == [["b|a|0", "b|a|1", "b|a|2"], ["x"]]
    edited = await lean.edit_message_text("Again", CHAT, sent.message_id, reply_markup=_plain("b"))
    assert edited.reply_markup == _plain("b") and edited.text == "Again"
    assert emulator.user(CHAT, "Ada").last.buttons == [["0", "1", "2"], ["Å"]]
    # Without a keyboard Telegram drops it, and the answer says so.
    bare = await lean.edit_message_text("Bare", CHAT, sent.message_id)
    assert bare.reply_markup is None and emulator.user(CHAT, "Ada").last.buttons == []
    url = InlineKeyboardMarkup([[InlineKeyboardButton("Site", url="https://example.org/")]])
    linked = await lean.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=url)
    assert linked.reply_markup == url


async def test_same_answers_as_plain_ptb(emulator: BotApiEmulator, lean: LeanBot) -> None:
    async with Bot(emulator.token, base_url=emulator.base_url) as plain:
        ours = await lean.send_message(CHAT, "Same", reply_markup=_plain("s"))
        theirs = await plain.send_message(CHAT, "Same", reply_markup=_plain("s"))
    assert ours.to_dict() | {"message_id": 0} == theirs.to_dict() | {"message_id": 0}


async def test_updates_leave_the_tapped_keyboard_unparsed(emulator: BotApiEmulator, lean: LeanBot) -> None:
    sent = await lean.send_message(CHAT, "Pick", reply_markup=_plain("t"))
    await emulator.user(CHAT, "Ada").tap("1", wait=False)
    updates = await lean.get_updates(timeout=0)
    query = updates[-1].callback_query
    assert query is not None and query.data == "b|t|1"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.message.text == "Pick" and query.message.reply_markup is None


def test_drop_tapped_keyboard_only_touches_a_tapped_message() -> None:
    tap = {"update_id": 1, "callback_query": {"id": "1", "message": {"message_id": 5, "reply_markup": {}}}}
    assert drop_tapped_keyboard(tap)["callback_query"]["message"] == {"message_id": 5}
    message = {"update_id": 2, "message": {"message_id": 6, "reply_markup": {}}}
    assert drop_tapped_keyboard(message) == {"update_id": 2, "message": {"message_id": 6, "reply_markup": {}}}
    assert drop_tapped_keyboard({"update_id": 3, "callback_query": "junk"}) == {
        "update_id": 3,
        "callback_query": "junk",
    }


async def test_results_unread_skips_the_message(emulator: BotApiEmulator, lean: LeanBot) -> None:
    sent = await lean.send_message(CHAT, "Pick", reply_markup=_plain("u"))
    with results_unread():
        assert await lean.edit_message_text("Picked", CHAT, sent.message_id, reply_markup=_plain("v")) is True
    assert emulator.user(CHAT, "Ada").last.text == "Picked"
    # Outside the block the Message comes back as ever.
    edited = await lean.edit_message_text("Again", CHAT, sent.message_id)
    assert edited.text == "Again"
