"""/privacy: a client sees what is kept about them, downloads it, withdraws consent, or has it erased."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import deps
from bot.dialogs import privacy as texts
from bot.handlers.client import client_of
from bot.handlers.common import answer, edit_quietly


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What is kept about the person writing, with buttons for the export, withdrawal and erasure."""
    d = deps(context)
    client = await client_of(d, update)
    lang = d.language(client)
    data = await d.privacy.export(client.id)
    msg = texts.overview(d.practice, data, d.booking.clock(), lang)
    await update.effective_message.reply_text(  # type: ignore[union-attr]
        msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup, disable_web_page_preview=True
    )


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on a /privacy button; it always acts on the person tapping, so no id in the data can be forged."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    client = await client_of(d, update)
    lang = d.language(client)
    chat_id, message_id = query.message.chat.id, query.message.message_id
    parts = callback.fields(query.data)
    verb = parts[1] if parts is not None and len(parts) > 1 else ""
    await answer(query)
    if verb == "export":
        data = await d.privacy.export(client.id)
        await context.bot.send_document(
            chat_id, texts.export_file(data), filename=texts.EXPORT_FILE, caption=texts.export_caption(lang)
        )
    elif verb == "withdraw":
        msg = texts.confirm_withdraw(lang)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
    elif verb == "withdraw!":
        notes = await d.privacy.withdraw(client.id)
        await edit_quietly(context.bot, chat_id, message_id, text=texts.withdrawn(lang, notes), markup=None)
    elif verb == "erase":
        data = await d.privacy.export(client.id)
        upcoming = texts.overview_upcoming(data, d.booking.clock())
        msg = texts.confirm_erase(lang, upcoming)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
    elif verb == "erase!":
        done = await d.privacy.erase(client.id, actor=f"client:{client.id}")
        await edit_quietly(context.bot, chat_id, message_id, text=texts.erased_text(lang, len(done.cancelled)))
        await notify.erased(context.bot, d, done)
    else:  # "back", or anything else: the overview again
        data = await d.privacy.export(client.id)
        msg = texts.overview(d.practice, data, d.booking.clock(), lang)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
