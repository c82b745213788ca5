"""/connect: a specialist signs in to Google or Microsoft and chooses the calendars the bot uses."""

from __future__ import annotations

import contextlib
import logging

from telegram import Bot, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import callback
from bot.deps import Deps, deps
from bot.dialogs import connect as screens
from bot.handlers.common import answer, edit_quietly
from bot.i18n import gettext_for
from providers.oauth import PASTE_REDIRECT, SignInFailed, code_from_address
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Specialist
from scheduling.db import CalendarConnectionRow

log = logging.getLogger(__name__)


def _specialist(d: Deps, telegram_id: int) -> Specialist | None:
    return next((s for s in d.practice.specialists if s.telegram_id == telegram_id), None)


async def connect(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the sign-in link for the calendar the practice file names for this specialist."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    d = deps(context)
    _ = gettext_for(await d.staff_language(user.id))
    spec = _specialist(d, user.id)
    if spec is None or d.connections is None:
        await message.reply_text(_("Only the practice's specialists connect calendars."))
        return
    kind = spec.calendar_kind
    if kind not in screens.PROVIDER_NAMES:
        await message.reply_text(
            _("Your calendar is set up in the practice file; /connect is for Google and Microsoft.")
        )
        return
    asked = (context.args or [kind])[0].lower()
    if asked != kind:
        await message.reply_text(
            _("The practice file says your calendar is {provider}: send /connect {kind}.").format(
                provider=screens.PROVIDER_NAMES[kind], kind=kind
            )
        )
        return
    redirect = d.connections.callback_url or PASTE_REDIRECT
    try:
        url = await d.connections.begin(spec, message.chat_id, redirect)
    except SignInFailed as exc:
        log.warning("sign-in for %s cannot start: %s", spec.id, exc)
        await message.reply_text(
            _("Signing in with {provider} is not set up yet; the practice's administrator can set it up.").format(
                provider=screens.PROVIDER_NAMES[kind]
            )
        )
        return
    text, markup = screens.sign_in(_, kind, url, paste=redirect == PASTE_REDIRECT)
    await message.reply_text(text, reply_markup=markup)


async def finish_sign_in(bot: Bot, d: Deps, state: str, code: str) -> CalendarConnectionRow:
    """Complete a sign-in from either way back (the web callback or a pasted address) and offer the calendars."""
    assert d.connections is not None
    row = await d.connections.complete(state, code)
    lang = await d.staff_language(row.chat_id) if row.chat_id is not None else d.practice.practice.language
    text, markup = screens.choosing(gettext_for(lang), row)
    if row.chat_id is not None:
        await bot.send_message(row.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup)
    return row


async def pasted(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The address the browser ended on after signing in: finish the sign-in."""
    message = update.effective_message
    assert message is not None and message.text is not None
    d = deps(context)
    _ = gettext_for(await d.staff_language(update.effective_user.id))  # type: ignore[union-attr]
    try:
        code, state = code_from_address(message.text)
        await finish_sign_in(context.bot, d, state, code)
    except (SignInFailed, CalendarUnavailable) as exc:
        log.warning("sign-in from a pasted address failed: %s", type(exc).__name__)
        await message.reply_text(screens.failed(_, str(exc)), parse_mode=ParseMode.HTML)
    # The address held a one-time code: used or refused, it need not stay in the chat.
    with contextlib.suppress(TelegramError):
        await message.delete()


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap while choosing calendars: the booking calendar, a busy calendar on or off, or Done."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    _ = gettext_for(await d.staff_language(query.from_user.id))
    spec = _specialist(d, query.from_user.id)
    parts = callback.fields(query.data) or []
    valid = len(parts) == 3 and parts[1] in ("b", "t") and callback.number(parts[2]) is not None
    if spec is None or d.connections is None or not (valid or parts == ["c", "d"]):
        await answer(query, _("This button is not valid."), alert=True)
        return
    await answer(query)
    try:
        if parts[1] == "d":
            choice = await d.connections.finish(spec.id)
            await edit_quietly(
                context.bot, query.message.chat.id, query.message.message_id, text=screens.connected(_, choice)
            )
            return
        row = await d.connections.connection(spec.id)
        found = row.calendars.get("found", []) if row is not None else []
        index = callback.number(parts[2]) or 0
        if index >= len(found):
            raise SignInFailed("stale button")
        picked = found[index]["id"]
        row = await d.connections.choose(spec.id, **({"booking": picked} if parts[1] == "b" else {"toggle": picked}))
    except (SignInFailed, CalendarUnavailable) as exc:
        await edit_quietly(
            context.bot, query.message.chat.id, query.message.message_id, text=screens.failed(_, str(exc))
        )
        return
    text, markup = screens.choosing(_, row)
    await edit_quietly(context.bot, query.message.chat.id, query.message.message_id, text=text, markup=markup)
