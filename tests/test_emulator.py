"""The Bot API emulator, driven by the real python-telegram-bot over HTTP."""

from __future__ import annotations

import asyncio
import html
import re
import sys
from collections.abc import AsyncIterator, Callable
from io import BytesIO
from pathlib import Path

import aiohttp
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fixtures.telegram import running_app
from tgemu import NOT_MODIFIED, QUERY_TOO_OLD, BotApiEmulator, parse_html, parse_markdown_v2

ICS = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"


def telegram_says(description: str) -> str:
    """The exact message PTB shows for an error answer with Telegram's description."""
    return re.escape(BadRequest(f"Bad Request: {description}").message)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_user and update.message
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Edit me", callback_data="edit")],
            [InlineKeyboardButton("Get file", callback_data="file")],
            [InlineKeyboardButton("Site", url="https://example.org/")],
        ]
    )
    name = html.escape(update.effective_user.first_name)
    payload = " ".join(context.args or [])
    await update.message.reply_text(
        f"Hello <b>{name}</b> {payload}".strip(), parse_mode=ParseMode.HTML, reply_markup=keyboard
    )


async def on_phone(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("Share my phone", request_contact=True)], ["Cancel"]], one_time_keyboard=True
    )
    await update.message.reply_text("Your phone?", reply_markup=keyboard)


async def on_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message and update.message.contact and update.effective_user
    own = update.message.contact.user_id == update.effective_user.id
    await update.message.reply_text(
        f"Got {update.message.contact.phone_number} own={own}", reply_markup=ReplyKeyboardRemove()
    )


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message and update.message.text
    await update.message.reply_text(update.message.text)


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query and query.message and update.effective_chat
    if query.data == "edit":
        await query.answer()
        again = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="edit")]])
        await query.edit_message_text("Edited <i>in place</i>", parse_mode=ParseMode.HTML, reply_markup=again)
    elif query.data == "file":
        await query.answer("Sending the file", show_alert=True)
        await context.bot.send_document(update.effective_chat.id, BytesIO(ICS), filename="visit.ics")
    else:
        await query.answer("This button is no longer valid", show_alert=True)


def build_app(emulator: BotApiEmulator) -> Application:
    app = (
        ApplicationBuilder()
        .token(emulator.token)
        .base_url(emulator.base_url)
        .base_file_url(emulator.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CommandHandler("phone", on_phone))
    app.add_handler(MessageHandler(filters.CONTACT, on_contact))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(CallbackQueryHandler(on_callback))
    return app


@pytest.fixture
async def app(emulator: BotApiEmulator) -> AsyncIterator[Application]:
    async with running_app(build_app(emulator)) as application:
        yield application


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emulator.token, base_url=emulator.base_url, base_file_url=emulator.base_file_url) as client:
        yield client


# --- round trips through a running Application ------------------------------------------------------


async def test_start_command_greets_with_html_and_keyboard(emulator: BotApiEmulator, app: Application) -> None:
    ada = emulator.user(1001, "Ada <3")
    await ada.send("/start promo42")
    assert ada.last.text == "Hello Ada <3 promo42"
    assert ada.last.entities == [{"type": "bold", "offset": 6, "length": 6}]
    assert ada.last.buttons == [["Edit me"], ["Get file"], ["Site"]]
    assert emulator.requests["sendMessage"] == 1
    assert emulator.requests["getMe"] == 1


async def test_echo_keeps_each_chat_apart(emulator: BotApiEmulator, app: Application) -> None:
    ada, bob = emulator.user(1001, "Ada"), emulator.user(1002, "Bob", language_code="pl")
    await ada.send("first 😀 message")
    await bob.send("hello")
    await ada.send("second")
    assert [m.text for m in ada.messages] == ["first 😀 message", "second"]
    assert [m.text for m in bob.messages] == ["hello"]
    assert [m.from_bot for m in emulator.chat(1001)] == [False, True, False, True]


async def test_tap_edits_the_message_in_place(emulator: BotApiEmulator, app: Application) -> None:
    ada = emulator.user(1001, "Ada")
    await ada.send("/start")
    first_id = ada.last.message_id
    await ada.tap("Edit")
    assert len(ada.messages) == 1
    assert ada.last.message_id == first_id
    assert ada.last.text == "Edited in place"
    assert ada.last.entities == [{"type": "italic", "offset": 7, "length": 8}]
    assert ada.last.buttons == [["Again"]]
    assert ada.last.edit_date is not None
    assert ada.answers[-1].text is None and not ada.answers[-1].show_alert
    assert ada.unanswered == []


async def test_tap_that_sends_a_document_and_alert(emulator: BotApiEmulator, app: Application, bot: Bot) -> None:
    ada = emulator.user(1001, "Ada")
    await ada.send("/start")
    await ada.tap("Get file")
    assert ada.documents == [("visit.ics", ICS)]
    assert ada.answers[-1].text == "Sending the file" and ada.answers[-1].show_alert
    document = ada.last.document
    assert document is not None
    downloaded = await (await bot.get_file(document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == ICS


async def test_tap_reports_available_labels(emulator: BotApiEmulator, app: Application) -> None:
    ada = emulator.user(1001, "Ada")
    await ada.send("/start")
    with pytest.raises(AssertionError, match=r"available: \[\['Edit me'\], \['Get file'\], \['Site'\]\]"):
        await ada.tap("Book")
    with pytest.raises(AssertionError, match="no callback_data"):
        await ada.tap("Site")


async def test_forged_callback_data_is_delivered(emulator: BotApiEmulator, app: Application) -> None:
    ada = emulator.user(1001, "Ada")
    await ada.send("/start")
    await ada.tap_data("book:999")
    assert ada.answers[-1].data == "book:999"
    assert ada.answers[-1].text == "This button is no longer valid" and ada.answers[-1].show_alert


async def test_reply_keyboard_shares_contact(emulator: BotApiEmulator, app: Application) -> None:
    ada = emulator.user(1001, "Ada")
    await ada.send("/phone")
    assert ada.reply_keyboard == [["Share my phone"], ["Cancel"]]
    with pytest.raises(AssertionError, match="phone="):
        await ada.tap_reply("Share")
    await emulator.wait_idle()
    await ada.tap_reply("Share", phone="+10000000000")
    assert ada.last.text == "Got +10000000000 own=True"
    assert ada.reply_keyboard is None
    await ada.send("/phone")
    await ada.tap_reply("Cancel")
    assert ada.last.text == "Cancel"


async def test_action_without_polling_bot_fails_clearly(emulator: BotApiEmulator) -> None:
    emulator.action_timeout = 0.2
    ada = emulator.user(1001, "Ada")
    with pytest.raises(AssertionError, match="never fetched"):
        await ada.send("hello")
    with pytest.raises(TimeoutError, match="1 updates not fetched"):
        await emulator.wait_idle(timeout=0.1)


async def test_running_app_needs_a_serving_emulator(emulator: BotApiEmulator) -> None:
    other = ApplicationBuilder().token("1:OTHER").base_url("http://127.0.0.1:9/bot").build()
    with pytest.raises(AssertionError, match="no running BotApiEmulator"):
        async with running_app(other):
            pass


# --- getUpdates --------------------------------------------------------------------------------------


async def test_long_polling_waits_and_offset_acknowledges(emulator: BotApiEmulator, bot: Bot) -> None:
    ada = emulator.user(1001, "Ada")
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await ada.send("/start x", wait=False)
    updates = await poll
    assert 0.2 <= loop.time() - started < 2
    assert len(updates) == 1 and updates[0].message is not None
    assert updates[0].message.text == "/start x"
    assert updates[0].message.entities[0].type == "bot_command"
    assert updates[0].message.entities[0].length == len("/start")
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()
    assert emulator.pending_updates == 0


async def test_empty_long_poll_really_waits(emulator: BotApiEmulator, bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == ()
    assert loop.time() - started >= 0.9


async def test_newer_poll_terminates_older_and_webhook_blocks_polling(emulator: BotApiEmulator, bot: Bot) -> None:
    async with Bot(emulator.token, base_url=emulator.base_url) as other:
        first = asyncio.create_task(other.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        await bot.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await first
    assert await bot.set_webhook("https://bot.example.org/hook")
    assert (await bot.get_webhook_info()).url == "https://bot.example.org/hook"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == ()


async def test_webhook_connections_are_telegrams_max_connections(emulator: BotApiEmulator, bot: Bot) -> None:
    assert await bot.set_webhook("https://bot.example.org/hook")
    assert emulator.webhook_connections == 40  # Telegram's default
    assert await bot.set_webhook("https://bot.example.org/hook", max_connections=100)
    assert emulator.webhook_connections == 100
    with pytest.raises(BadRequest, match="max_connections"):
        await bot.set_webhook("https://bot.example.org/hook", max_connections=101)


async def test_allowed_updates_filter_later_updates(emulator: BotApiEmulator, bot: Bot) -> None:
    ada = emulator.user(1001, "Ada")
    await bot.get_updates(timeout=0, allowed_updates=["callback_query"])
    await ada.send("ignored", wait=False)
    assert await bot.get_updates(timeout=0) == ()


# --- plain methods -----------------------------------------------------------------------------------


async def test_get_me_commands_chat_and_counters(emulator: BotApiEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot and me.username == emulator.bot["username"]
    await bot.set_my_commands([("start", "Book an appointment")])
    await bot.set_my_commands([("start", "Termin buchen")], language_code="de")
    assert [c.description for c in await bot.get_my_commands()] == ["Book an appointment"]
    assert [c.description for c in await bot.get_my_commands(language_code="de")] == ["Termin buchen"]
    with pytest.raises(BadRequest, match=telegram_says("BOT_COMMAND_INVALID")):
        await bot.set_my_commands([("Start!", "x")])
    emulator.user(1001, "Ada", last_name="Lovelace")
    chat = await bot.get_chat(1001)
    assert chat.first_name == "Ada" and chat.last_name == "Lovelace" and chat.type == "private"
    with pytest.raises(BadRequest, match=telegram_says("chat not found")):
        await bot.get_chat(999)
    assert await bot.close() and await bot.log_out()
    assert emulator.requests["setMyCommands"] == 3 and emulator.errors["setMyCommands"] == 1


async def test_http_errors_and_get_requests(emulator: BotApiEmulator, bot: Bot) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emulator.base_url}1:WRONG/getMe") as response:
            assert response.status == 401
            assert await response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        async with session.post(f"{emulator.base_url}{emulator.token}/sendPigeon") as response:
            assert response.status == 404
            assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with session.get(f"{emulator.base_url}{emulator.token}/getme") as response:
            assert (await response.json())["result"]["is_bot"] is True
        url = f"{emulator.base_url}{emulator.token}/sendMessage"
        async with session.post(url, json={"chat_id": 1, "text": "x"}) as response:
            assert response.status == 403
    with pytest.raises(InvalidToken):
        async with Bot("1:WRONG", base_url=emulator.base_url):
            pass


@pytest.mark.filterwarnings("ignore:Please use 'Bot.sendChatAction'")
async def test_delete_message_and_chat_action(emulator: BotApiEmulator, bot: Bot) -> None:
    ada = emulator.user(1001, "Ada")
    await ada.send("hi", wait=False)
    sent = await bot.send_message(1001, "to delete")
    assert await bot.send_chat_action(1001, "typing")
    with pytest.raises(BadRequest, match="Wrong parameter action"):
        await bot.do_api_request("sendChatAction", api_kwargs={"chat_id": 1001, "action": "dancing"})
    assert await bot.delete_message(1001, sent.message_id)
    assert ada.messages == []
    with pytest.raises(BadRequest, match=telegram_says("message to delete not found")):
        await bot.delete_message(1001, sent.message_id)


async def test_listeners_see_sent_and_edited_messages_and_answered_taps(emulator: BotApiEmulator, bot: Bot) -> None:
    seen: list[tuple[str, str]] = []
    emulator.listeners.append(lambda event, message: seen.append((event, message.text)))
    ada = emulator.user(1001, "Ada")
    await ada.send("hi", wait=False)
    sent = await bot.send_message(1001, "one", reply_markup=keyboard("x"))
    await bot.edit_message_text("two", chat_id=1001, message_id=sent.message_id, reply_markup=keyboard("y"))
    await ada.tap_data("y", sent.message_id, wait=False)
    (query,) = [u.callback_query for u in await bot.get_updates(timeout=0) if u.callback_query is not None]
    await query.answer()  # an answer after the edit is a change a waiting person must hear of
    assert seen == [("sent", "one"), ("edited", "two"), ("answered", "two")]


# --- strictness --------------------------------------------------------------------------------------


@pytest.fixture
async def started(emulator: BotApiEmulator) -> int:
    await emulator.user(1001, "Ada").send("hi", wait=False)
    return 1001


def keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data=data)]])


async def test_callback_data_limit_is_64_bytes(bot: Bot, started: int) -> None:
    await bot.send_message(started, "ok", reply_markup=keyboard("é" * 32))
    with pytest.raises(BadRequest, match=telegram_says("BUTTON_DATA_INVALID")):
        await bot.send_message(started, "too long", reply_markup=keyboard("é" * 32 + "x"))


@pytest.mark.filterwarnings("ignore:Please use 'Bot.sendMessage'")
@pytest.mark.parametrize(
    ("markup", "message"),
    [
        (
            {"inline_keyboard": [{"text": "a", "callback_data": "b"}]},
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays',
        ),
        (
            {"inline_keyboard": [[{"text": "a"}]]},
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            {"inline_keyboard": [[{"text": "a", "callback_data": "b", "url": "https://x.org"}]]},
            "can't parse inline keyboard button: InlineKeyboardButton must have exactly one optional field",
        ),
        (
            {"inline_keyboard": [[{"text": "", "callback_data": "b"}]]},
            "can't parse inline keyboard button: Text must be non-empty",
        ),
        ({"inline_keyboard": [[{"text": "a", "url": "not a url"}]]}, "BUTTON_URL_INVALID"),
        ({"keyboard": "yes"}, 'field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays'),
        ({"colour": "red"}, "can't parse reply keyboard markup JSON object"),
    ],
)
async def test_malformed_keyboards_are_refused(bot: Bot, started: int, markup: object, message: str) -> None:
    with pytest.raises(BadRequest, match=f"^{telegram_says(message)}$"):
        await bot.do_api_request("sendMessage", api_kwargs={"chat_id": started, "text": "x", "reply_markup": markup})


async def test_text_must_be_non_empty_and_at_most_4096(bot: Bot, started: int) -> None:
    with pytest.raises(BadRequest, match=telegram_says("message text is empty")):
        await bot.send_message(started, "  \n ")
    with pytest.raises(BadRequest, match=telegram_says("message text is empty")):
        await bot.send_message(started, "<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=telegram_says("message is too long")):
        await bot.send_message(started, "x" * 4097)
    sent = await bot.send_message(started, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    assert sent.text == "x" * 4096
    assert sent.entities[0].type == "bold"


async def test_edit_errors(emulator: BotApiEmulator, bot: Bot, started: int) -> None:
    sent = await bot.send_message(started, "Pick", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match=telegram_says(NOT_MODIFIED.removeprefix("Bad Request: "))):
        await bot.edit_message_text("Pick", chat_id=started, message_id=sent.message_id, reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(chat_id=started, message_id=sent.message_id, reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match=telegram_says("message to edit not found")):
        await bot.edit_message_text("x", chat_id=started, message_id=9999)
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", chat_id=started, message_id=1)
    # Omitting reply_markup drops the keyboard, so the same text is still a modification.
    edited = await bot.edit_message_text("Pick", chat_id=started, message_id=sent.message_id)
    assert edited.reply_markup is None and emulator.user(started, "Ada").last.buttons == []
    changed = await bot.edit_message_reply_markup(
        chat_id=started, message_id=sent.message_id, reply_markup=keyboard("b")
    )
    assert changed.reply_markup == keyboard("b")


async def test_callback_answers_are_single_and_expire(emulator: BotApiEmulator, bot: Bot, started: int) -> None:
    ada = emulator.user(started, "Ada")
    await bot.send_message(started, "Pick", reply_markup=keyboard("a"))
    await ada.tap("Go", wait=False)
    await ada.tap("Go", wait=False)
    queries = [u.callback_query for u in await bot.get_updates(timeout=0) if u.callback_query]
    assert [q.data for q in queries] == ["a", "a"]
    assert await queries[0].answer("Done")
    with pytest.raises(BadRequest, match=telegram_says(QUERY_TOO_OLD.removeprefix("Bad Request: "))):
        await queries[0].answer()
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query("nonexistent")
    emulator.advance(16)
    with pytest.raises(BadRequest, match="Query is too old"):
        await queries[1].answer()
    assert [a.text for a in ada.answers] == ["Done"]
    assert ada.unanswered == ["a"]


async def test_html_errors_use_telegram_wording(bot: Bot, started: int) -> None:
    cases = {
        "<b>bold": 'Can\'t find end tag corresponding to start tag "b"',
        "<b>x</i>": 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"',
        "line<br>break": 'Unsupported start tag "br" at byte offset 4',
        "ä <3 you": 'Unsupported start tag "3" at byte offset 3',
        "ä <3": "Unclosed start tag at byte offset 3",
        "a < b": 'Unsupported start tag "" at byte offset 2',
        "x</b>": "Unexpected end tag at byte offset 1",
        '<a href="https://x.org">x': 'Can\'t find end tag corresponding to start tag "a"',
        "<b": "Unclosed start tag at byte offset 0",
    }
    for text, message in cases.items():
        with pytest.raises(BadRequest, match=telegram_says(f"can't parse entities: {message}")):
            await bot.send_message(started, text, parse_mode=ParseMode.HTML)


def test_html_subset_entities() -> None:
    text, entities = parse_html(
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        '<del>d</del><a href="https://x.org/?a=1&amp;b=2">l</a><code>c</code>'
        '<pre><code class="language-python">p</code></pre><tg-spoiler>h</tg-spoiler>'
        "<blockquote>q</blockquote> &lt;&gt;&amp;&quot;&#33;"
    )
    assert text == 'bsieunskdlcphq <>&"!'
    types = [e["type"] for e in entities]
    assert types == [
        "bold",
        "bold",
        "italic",
        "italic",
        "underline",
        "underline",
        "strikethrough",
        "strikethrough",
        "strikethrough",
        "text_link",
        "code",
        "pre",
        "spoiler",
        "blockquote",
    ]
    assert entities[9]["url"] == "https://x.org/?a=1&b=2"
    assert entities[11]["language"] == "python"
    emoji_text, emoji_entities = parse_html("😀 <b>x</b>")
    assert emoji_text == "😀 x" and emoji_entities == [{"type": "bold", "offset": 3, "length": 1}]


def test_markdown_v2() -> None:
    text, entities = parse_markdown_v2(r"*bold* _it_ [link](https://x.org) `c\`` 1\.5")
    assert text == "bold it link c` 1.5"
    assert [e["type"] for e in entities] == ["bold", "italic", "text_link", "code"]


async def test_markdown_reserved_character_is_refused(bot: Bot, started: int) -> None:
    reserved = "can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'"
    with pytest.raises(BadRequest, match=telegram_says(reserved)):
        await bot.send_message(started, "Price 1.5", parse_mode=ParseMode.MARKDOWN_V2)


async def test_bot_cannot_initiate_or_write_to_a_blocker(emulator: BotApiEmulator, bot: Bot) -> None:
    ada = emulator.user(1001, "Ada")
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await bot.send_message(1001, "hello")
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await bot.send_message(4242, "hello")
    await ada.send("hi", wait=False)
    await bot.send_message(1001, "hello")
    ada.block()
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(1001, "still there?")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_limits_per_chat_and_overall() -> None:
    emulator = BotApiEmulator(chat_burst=3, chat_per_second=1.0, global_per_second=5)
    async with emulator, Bot(emulator.token, base_url=emulator.base_url) as bot:
        for user_id in (1, 2, 3):
            await emulator.user(user_id, "U").send("hi", wait=False)
        for _ in range(3):
            await bot.send_message(1, "x")
        with pytest.raises(RetryAfter) as error:
            await bot.send_message(1, "x")
        assert str(error.value) == "Flood control exceeded. Retry in 1 seconds"
        await bot.send_message(2, "x")
        await bot.send_message(2, "x")
        with pytest.raises(RetryAfter):
            await bot.send_message(3, "x")
        emulator.advance(1.5)
        await bot.send_message(1, "x")
        assert emulator.errors["sendMessage"] == 2


# --- webhook relay and flood control ------------------------------------------------------------------


async def test_webhook_relay_alternates_a_chats_updates_and_runs_the_method_in_the_response(
    emulator: BotApiEmulator, bot: Bot
) -> None:
    received: list[tuple[int, str, dict[str, object]]] = []

    def replica(number: int) -> aiohttp.web.Application:
        async def hook(request: aiohttp.web.Request) -> aiohttp.web.Response:
            update = await request.json()
            received.append((number, request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), update))
            chat = update["message"]["chat"]["id"]
            return aiohttp.web.json_response({"method": "sendMessage", "chat_id": chat, "text": f"replica {number}"})

        app = aiohttp.web.Application()
        app.router.add_post("/hook", hook)
        return app

    runners = [aiohttp.web.AppRunner(replica(n)) for n in (1, 2)]
    targets = []
    for runner in runners:
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        targets.append(f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
    try:
        await bot.set_webhook("https://bot.example.org/hook", secret_token="s3cret")
        emulator.relay.to(*targets)
        ada, bob = emulator.user(1101, "Ada"), emulator.user(1102, "Bob")
        for text in ("one", "two", "three"):
            await ada.send(text)
        await bob.send("hi")
        assert [number for number, _, update in received if update["message"]["chat"]["id"] == ada.id] == [1, 2, 1]
        assert [number for number, _, update in received if update["message"]["chat"]["id"] == bob.id] == [1]
        assert {secret for _, secret, _ in received} == {"s3cret"}
        assert [m.text for m in ada.messages] == ["replica 1", "replica 2", "replica 1"]
        assert emulator.relay.replies["sendMessage"] == 4
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_flood_answers_429_for_the_chosen_chat_until_calm(emulator: BotApiEmulator, bot: Bot) -> None:
    ada, bob = emulator.user(1201, "Ada"), emulator.user(1202, "Bob")
    await ada.send("hi", wait=False)
    await bob.send("hi", wait=False)
    emulator.flood(ada.id, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ada.id, "hello")
    assert caught.value.retry_after == 7
    await bot.send_message(bob.id, "hello")
    emulator.calm(ada.id)
    await bot.send_message(ada.id, "hello again")
    assert [m.text for m in ada.messages] == ["hello again"] and [m.text for m in bob.messages] == ["hello"]


# --- users driven from another process (/_emu/, tgemu.remote) ---------------------------------------


async def test_remote_users_act_and_follow_their_chats_over_http(emulator: BotApiEmulator, app: Application) -> None:
    from tgemu.remote import RemoteEmulator

    seen: list[str] = []
    changed = asyncio.Event()

    def listener(event: str, message: object) -> None:
        seen.append(event)
        changed.set()

    async with RemoteEmulator(f"http://{emulator.host}:{emulator.port}") as remote:
        remote.listeners.append(listener)
        ada = remote.user(2001, "Ada")

        async def until(predicate: Callable[[], bool]) -> None:
            async with asyncio.timeout(10):
                while not predicate():
                    changed.clear()
                    await changed.wait()

        sent = await ada.send("/start")
        assert sent.text == "/start" and not sent.from_bot
        await until(lambda: len(ada.messages) == 2)
        greeting = ada.messages[-1]
        assert greeting.from_bot and greeting.text == "Hello Ada" and greeting.buttons[0] == ["Edit me"]

        await ada.tap_data("edit", greeting.message_id)
        await until(lambda: len(ada.answers) == 1 and greeting.text == "Edited in place")
        assert ada.messages[-1] is greeting  # edited in place, as in the emulator itself
        await ada.tap_data("file", greeting.message_id)
        await until(lambda: len(ada.answers) == 2 and ada.messages[-1].document is not None)
        assert ada.answers[-1].show_alert and ada.answers[-1].text == "Sending the file"

        await remote.refresh()
        assert remote.requests["sendMessage"] == 1 and remote.requests["answerCallbackQuery"] == 2
        assert ada.unanswered == []
        assert "edited" in seen


async def test_python_m_tgemu_serves_the_user_side_too(tmp_path: Path) -> None:
    from caldav_bridge.embedded import free_port, wait_listening

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgemu", "--port", str(port), "--token", "42:T", "--no-flood-limits"
    )
    try:
        await wait_listening("127.0.0.1", port, proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/_emu/users/7", json={"first_name": "Bo"}) as resp:
                assert resp.status == 200
            async with http.get(f"http://127.0.0.1:{port}/_emu/stats") as resp:
                assert (await resp.json())["unanswered"] == {}
    finally:
        proc.terminate()
        await proc.wait()
