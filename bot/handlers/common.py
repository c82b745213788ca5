"""Small helpers every handler uses to talk to Telegram without tripping over its harmless errors."""

from __future__ import annotations

import logging

from telegram import Bot, CallbackQuery, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot import webhook_reply
from bot.deps import Deps
from bot.i18n import gettext_for
from bot.telegram_bot import results_unread

log = logging.getLogger(__name__)

_HARMLESS = ("message is not modified", "message to edit not found", "query is too old")


def harmless(exc: BadRequest) -> bool:
    """Telegram's answers that only mean the screen already shows what we wanted, or is gone."""
    return any(h in exc.message.lower() for h in _HARMLESS)


async def answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    """Answer a button tap; a query Telegram already gave up on must not undo the work done for it."""
    if webhook_reply.offer(query.id, text, alert):
        return
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as exc:
        if not harmless(exc):
            raise
        log.debug("answer skipped: %s", exc.message)


async def not_valid(query: CallbackQuery, d: Deps) -> None:
    """The one answer to a stale, forged or someone else's button, in the tapper's language.

    It says neither whether the appointment exists nor whose it is.
    """
    _ = gettext_for(await d.staff_language(query.from_user.id))
    await answer(query, _("This button is not valid."), alert=True)


async def edit_quietly(
    bot: Bot,
    chat_id: int,
    message_id: int,
    *,
    text: str | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Edit a message's text (and buttons), or only its buttons, ignoring "not modified" and vanished messages."""
    try:
        with results_unread():
            if text is None:
                await bot.edit_message_reply_markup(chat_id, message_id, reply_markup=markup)
            else:
                await bot.edit_message_text(text, chat_id, message_id, parse_mode=ParseMode.HTML, reply_markup=markup)
    except BadRequest as exc:
        if not harmless(exc):
            raise
        log.debug("edit skipped: %s", exc.message)
