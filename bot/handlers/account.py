"""The client's own settings and help: /language and /help."""

from __future__ import annotations

import logging

from babel import Locale
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.deps import deps
from bot.dialogs import draft as drafts
from bot.dialogs.render import practice_contact
from bot.handlers.client import client_of
from bot.handlers.common import answer, edit_quietly
from bot.i18n import available, gettext_for
from scheduling.staff import staff_member

log = logging.getLogger(__name__)


def language_name(lang: str) -> str:
    """A language named in itself ("polski", "Deutsch"), as people look for their own."""
    name = Locale.parse(lang).get_display_name(lang) or lang
    return name[:1].upper() + name[1:]


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer every translated language; the choice is remembered for this client."""
    d = deps(context)
    client = await client_of(d, update)
    lang = d.language(client)
    _ = gettext_for(lang)
    rows = [
        [InlineKeyboardButton(("✓ " if code == lang else "") + language_name(code), callback_data=f"l|{code}")]
        for code in available()
    ]
    await update.effective_message.reply_text(  # type: ignore[union-attr]
        _("Choose your language:"), reply_markup=InlineKeyboardMarkup(rows)
    )


async def language_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Remember the language tapped, and carry it into a booking dialog under way."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    code = query.data.partition("|")[2]
    if code not in available():
        client = await client_of(d, update)
        log.warning("refused language data %r", query.data[:64])
        await answer(query, gettext_for(d.language(client))("This button is not valid."), alert=True)
        return
    await answer(query)
    user_id = update.effective_user.id  # type: ignore[union-attr]
    async with d.store.tx() as tx:
        await tx.upsert_client(user_id, language=code)
    chat_id = query.message.chat.id
    draft, message_id = await drafts.load(d.store, chat_id)
    if draft is not None:
        draft.lang = code
        await drafts.save(d.store, chat_id, draft, message_id)
    _ = gettext_for(code)
    text = _("I will write to you in {language} from now on.").format(language=language_name(code))
    await edit_quietly(context.bot, chat_id, query.message.message_id, text=text)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What the bot does, its commands, and how to reach the practice."""
    d = deps(context)
    client = await client_of(d, update)
    lang = d.language(client)
    _ = gettext_for(lang)
    lines = [
        _("I book appointments and keep you informed about them."),
        "",
        _("/book: book an appointment"),
        _("/my: your appointments (move, cancel, message the specialist)"),
        _("/language: choose your language"),
        _("/cancel: stop the booking under way"),
    ]
    if staff_member(d.practice, update.effective_user.id) is not None:  # type: ignore[union-attr]
        lines += [
            "",
            _("For the practice's staff:"),
            _("/agenda: the week's requests and appointments, each with its card"),
            _("/new: book a visit for a client"),
            _("/find name or phone: a client's appointments and record"),
        ]
    lines += [
        "",
        _("Questions the bot cannot answer? Contact the practice:"),
        practice_contact(_, lang, d.practice),
    ]
    await update.effective_message.reply_html("\n".join(lines))  # type: ignore[union-attr]
