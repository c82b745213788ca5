"""The waiting list's buttons: take a freed time, or pass it on to the next client."""

from __future__ import annotations

import logging
from html import escape

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import deps
from bot.dialogs import waitlist as texts
from bot.dialogs.render import limit_reached
from bot.handlers.client import client_of
from bot.handlers.common import answer, edit_quietly
from bot.i18n import gettext_for
from scheduling.limits import LimitReached
from scheduling.waitlist import OfferGone

log = logging.getLogger(__name__)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Take it (q|y|id) or No, thanks (q|n|id) on an offer of freed time."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    client = await client_of(d, update)
    lang = d.language(client)
    _ = gettext_for(lang)
    parts = callback.fields(query.data) or []
    entry_id = callback.number(parts[2]) if len(parts) == 3 and parts[1] in ("y", "n") else None
    if entry_id is None:
        log.warning("refused callback data %r", query.data[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    chat_id, message_id = query.message.chat.id, query.message.message_id
    if parts[1] == "n":
        try:
            entry = await d.waitlist.decline(entry_id, client.id)
        except OfferGone:
            await answer(query, texts.lapsed(lang), alert=True)
            await edit_quietly(context.bot, chat_id, message_id, text=texts.lapsed(lang))
            return
        await answer(query)
        await edit_quietly(context.bot, chat_id, message_id, text=texts.passed(lang))
        await notify.offer_freed_time(context.bot, d, entry.offer_specialist)
        return
    try:
        appt = await d.waitlist.accept(entry_id, client.id)
    except OfferGone:
        await answer(query, texts.gone(lang), alert=True)
        await edit_quietly(context.bot, chat_id, message_id, text=texts.gone(lang))
        return
    except LimitReached as exc:
        # Longer than an alert may be: the offer's message says it, and the time goes to the next one waiting.
        await answer(query)
        await edit_quietly(context.bot, chat_id, message_id, text=escape(limit_reached(_, exc)))
        await notify.offer_freed_time(context.bot, d)
        return
    await answer(query)
    await edit_quietly(context.bot, chat_id, message_id, text=texts.taken(lang, appt.replaces_id is not None))
    await notify.ask_specialist(context.bot, d, appt)
