"""The python-telegram-bot Application: handlers, per-chat ordering, rate limiting, background jobs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import callback, notify, webhook_reply
from bot.deps import Deps, deps
from bot.handlers import account, alerts, client, connect, messages, mine, privacy, specialist, waitlist, workspace
from bot.handlers.common import harmless, not_valid
from bot.i18n import available, gettext_for
from bot.ratelimit import ChatRateLimiter, bulk_sends
from bot.slots import UpdateSlots
from bot.telegram_bot import LeanBot
from bot.telegram_http import AiohttpRequest
from scheduling.locks import KeyLocks

log = logging.getLogger(__name__)

SWEEP_SECONDS = 20.0
# Updates held (received, not yet done) per update slot: those waiting for their chat's turn, or for their
# specialist's turn to book.
UPDATES_HELD_PER_SLOT = 8


class PerChatProcessor(BaseUpdateProcessor):
    """Updates run concurrently, except that one chat's updates run one at a time, whichever process gets them."""

    def __init__(self, chats: KeyLocks):
        # python-telegram-bot's own limit only bounds the updates held in memory; the slots decide how many
        # run, and an update waiting under a limit of its own (a Send for a busy specialist) leaves its slot.
        super().__init__(chats.capacity * UPDATES_HELD_PER_SLOT)
        self._chats = chats
        self.slots = UpdateSlots(chats.capacity)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            async with self.slots.slot():
                await coroutine
            return
        # The chat's turn first, then a slot: updates queued behind a slow chat (in flood control, a long
        # calendar read, a person tapping on and on) take no slot, so other chats never wait for them.
        async with self._chats.hold(chat.id), self.slots.slot():
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Runs before every handler: only private chats get an answer, and oversized button data goes no further.

    A practice's bot has no business in groups or channels: whatever is posted there is neither read
    nor answered, and no record is made of who posted it.
    """
    chat, query = update.effective_chat, update.callback_query
    if chat is None or chat.type != ChatType.PRIVATE:
        if query is not None:
            webhook_reply.give_up(query.id)
        log.debug("ignored an update from a %s chat", chat.type if chat is not None else "unknown")
        raise ApplicationHandlerStop
    if query is not None and callback.fields(query.data) is None:
        log.warning("refused oversized callback data %r", (query.data or "")[:64])
        await not_valid(query, deps(context))
        raise ApplicationHandlerStop


async def unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Callback data none of our keyboards produce: refuse it and log it."""
    query = update.callback_query
    assert query is not None
    log.warning("refused unknown callback data %r", (query.data or "")[:64])
    await not_valid(query, deps(context))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure without personal data and tell the person that nothing was lost."""
    err = context.error
    if isinstance(update, Update) and update.callback_query is not None:
        webhook_reply.give_up(update.callback_query.id)
    if isinstance(err, BadRequest) and harmless(err):
        return
    log.error("update failed: %s", type(err).__name__, exc_info=err)
    if not isinstance(update, Update) or update.effective_chat is None or isinstance(err, Forbidden):
        return
    _ = gettext_for(deps(context).practice.practice.language)
    try:
        await context.bot.send_message(
            update.effective_chat.id, _("Something went wrong on our side. Please try again in a moment.")
        )
    except Exception:
        log.exception("could not report the failure to the chat")


async def sweep_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Expire undecided requests and re-send specialist requests that did not go out."""
    with bulk_sends():
        await notify.sweep(context.bot, deps(context))


async def set_commands(app: Application) -> None:
    """The command menu in each translated language (called once the bot has started)."""
    for lang in available():
        _ = gettext_for(lang)
        commands = [
            BotCommand("book", _("Book an appointment")),
            BotCommand("my", _("My appointments")),
            BotCommand("cancel", _("Stop the booking under way")),
            BotCommand("language", _("Choose your language")),
            BotCommand("help", _("Help and the practice's contact")),
            BotCommand("privacy", _("What is kept about you; download or erase it")),
        ]
        await app.bot.set_my_commands(commands, language_code=None if lang == "en" else lang)
        staff_commands = [
            BotCommand("agenda", _("The week's requests and appointments")),
            BotCommand("new", _("Book a visit for a client")),
            BotCommand("find", _("Find a client's appointments")),
            *commands,
        ]
        d = deps(app)
        staff = {s.telegram_id for s in d.practice.specialists if s.telegram_id} | set(d.practice.practice.admins)
        for chat_id in sorted(staff):
            try:
                await app.bot.set_my_commands(
                    staff_commands,
                    scope=BotCommandScopeChat(chat_id),
                    language_code=None if lang == "en" else lang,
                )
            except TelegramError as exc:
                # Telegram knows no chat with someone who never started the bot.
                log.info("no staff command menu for a chat yet: %s", exc.message)


def build_application(
    d: Deps,
    *,
    token: str,
    base_url: str,
    base_file_url: str,
    rate_limit: bool = True,
    sweep_seconds: float | None = SWEEP_SECONDS,
) -> Application:
    """The bot's Application wired to the booking service; polling or webhook is the caller's choice.

    sweep_seconds=None leaves out the periodic sweep, for callers that run `notify.sweep` themselves.
    """
    bot = LeanBot(
        token,
        base_url=base_url,
        base_file_url=base_file_url,
        request=AiohttpRequest(connection_pool_size=64),
        get_updates_request=AiohttpRequest(connection_pool_size=2),
        rate_limiter=ChatRateLimiter() if rate_limit else None,
    )
    app = ApplicationBuilder().bot(bot).concurrent_updates(PerChatProcessor(d.chats)).build()
    app.bot_data["deps"] = d
    # One gate in front of every handler below (they are all in the default group 0).
    app.add_handler(TypeHandler(Update, gate), group=-1)
    app.add_handler(CommandHandler("start", client.start))
    app.add_handler(CommandHandler("book", client.book))
    app.add_handler(CommandHandler("cancel", client.cancel))
    app.add_handler(CommandHandler("my", mine.my_appointments))
    app.add_handler(CommandHandler("agenda", specialist.show_agenda))
    app.add_handler(CommandHandler("language", account.language))
    app.add_handler(CommandHandler("help", account.help_command))
    app.add_handler(CommandHandler("privacy", privacy.privacy))
    app.add_handler(CallbackQueryHandler(privacy.button, pattern=r"^y\|"))
    app.add_handler(CommandHandler("id", specialist.show_id))
    app.add_handler(CallbackQueryHandler(client.button, pattern=r"^b\|"))
    app.add_handler(CallbackQueryHandler(specialist.button, pattern=r"^s\|"))
    app.add_handler(CallbackQueryHandler(mine.button, pattern=r"^m\|"))
    app.add_handler(CallbackQueryHandler(account.language_button, pattern=r"^l\|"))
    app.add_handler(CommandHandler("connect", connect.connect))
    app.add_handler(CallbackQueryHandler(connect.button, pattern=r"^c\|"))
    app.add_handler(CallbackQueryHandler(alerts.button, pattern=r"^a\|"))
    app.add_handler(CallbackQueryHandler(messages.write_button, pattern=r"^w\|"))
    app.add_handler(CallbackQueryHandler(waitlist.button, pattern=r"^q\|"))
    app.add_handler(CommandHandler("new", workspace.new_visit))
    app.add_handler(CommandHandler("find", workspace.find))
    app.add_handler(CallbackQueryHandler(workspace.button, pattern=r"^k\|"))
    app.add_handler(CallbackQueryHandler(workspace.flow_button, pattern=r"^v\|"))
    app.add_handler(CallbackQueryHandler(workspace.proposal, pattern=r"^p\|"))
    app.add_handler(CallbackQueryHandler(unknown_button))
    app.add_handler(MessageHandler(filters.CONTACT, client.contact))
    staff = [s.telegram_id for s in d.practice.specialists if s.telegram_id]
    signed_in = filters.Regex(r"^\s*https?://\S*[?&](code|error)=") & filters.User(user_id=staff)
    app.add_handler(MessageHandler(filters.TEXT & signed_in, connect.pasted))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, client.text))
    app.add_error_handler(on_error)
    if d.connections is not None:

        async def signed_out(specialist_id: str, provider: str) -> None:
            await notify.calendar_signed_out(app.bot, d, specialist_id, provider)

        d.connections.on_revoked = signed_out
    if sweep_seconds is not None:
        assert app.job_queue is not None
        app.job_queue.run_repeating(sweep_job, interval=sweep_seconds, first=1.0, name="sweep")
    return app
