"""The client's /my command: upcoming appointments; moving, cancelling and withdrawing a move."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import Deps, deps
from bot.dialogs import mine
from bot.dialogs import specialist as texts
from bot.dialogs import waitlist as waitlist_texts
from bot.dialogs.specialist import Message
from bot.handlers import client as client_handlers
from bot.handlers.client import client_of
from bot.handlers.common import answer, edit_quietly
from bot.i18n import gettext_for
from scheduling.booking import AlreadyDecided, CancellationClosed, NotAllowed
from scheduling.model import ACTIVE_STATUSES, Status
from scheduling.store import ClientRow

log = logging.getLogger(__name__)

_VERBS = ("c", "y", "l", "n", "mv", "w", "x", "e")


async def listing(d: Deps, client: ClientRow, *, expand: int | None = None) -> Message:
    """The client's upcoming visits, each request to move shown under the visit it would move."""
    async with d.store.tx() as tx:
        appts = await tx.client_appointments(client.id, upcoming_from=d.booking.clock())
        visits = [a for a in appts if a.status in ACTIVE_STATUSES and a.replaces_id is None]
        moves = await tx.pending_moves([a.id for a in visits])
    waiting = {w.appointment_id for w in await d.waitlist.waiting(client.id) if w.appointment_id is not None}
    return mine.listing(d.practice, visits, moves, d.language(client), waiting, expand=expand)


async def my_appointments(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the client's upcoming requests and appointments."""
    d = deps(context)
    client = await client_of(d, update)
    msg = await listing(d, client)
    await update.effective_message.reply_html(msg.text, reply_markup=msg.markup)  # type: ignore[union-attr]


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Move, Cancel (ask), Yes, Cancel anyway (late), No, or Keep as is on one of the client's appointments."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    client = await client_of(d, update)
    lang = d.language(client)
    _ = gettext_for(lang)
    parts = callback.fields(query.data) or []
    appt = None
    appt_id = callback.number(parts[2]) if len(parts) == 3 and parts[1] in _VERBS else None
    if appt_id is not None:
        async with d.store.tx() as tx:
            appt = await tx.get_appointment(appt_id)
    if appt is None or appt.client_id != client.id:
        log.warning("refused callback data %r", query.data[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    chat_id, message_id = query.message.chat.id, query.message.message_id
    verb = parts[1]
    if verb == "n":
        await answer(query)
        await edit_quietly(context.bot, chat_id, message_id, text=_("Nothing changed."))
        return
    if verb == "x":
        await answer(query)
        msg = await listing(d, client, expand=appt.series_id)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    if verb == "c":
        await answer(query)
        msg = mine.confirm_cancel(d.practice, appt, lang, d.booking.may_cancel(appt))
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    if verb == "mv":
        await answer(query)
        if not d.changes.may_move(appt):
            await edit_quietly(context.bot, chat_id, message_id, text=mine.move_closed(d.practice, appt, lang))
            return
        await edit_quietly(context.bot, chat_id, message_id, markup=None)
        await client_handlers.begin_move(update, context, d, client, appt)
        return
    if verb == "e":
        await answer(query)
        if appt.status == Status.CONFIRMED:
            await d.waitlist.join_earlier(appt)
            await edit_quietly(context.bot, chat_id, message_id, text=waitlist_texts.joined_earlier(lang))
            await notify.offer_freed_time(context.bot, d)
        else:
            await edit_quietly(context.bot, chat_id, message_id, text=texts.already(lang, appt.status))
        return
    if verb == "w":
        try:
            await d.changes.withdraw_move(appt.id, client.id)
        except (AlreadyDecided, NotAllowed) as exc:
            await answer(query, texts.already(lang, getattr(exc, "status", appt.status)), alert=True)
            return
        await answer(query)
        await edit_quietly(context.bot, chat_id, message_id, text=mine.move_withdrawn(lang))
        await notify.refresh_request(context.bot, d, appt)
        return
    try:
        appt = await d.booking.cancel_by_client(appt.id, client.id, late=verb == "l")
    except AlreadyDecided as exc:
        await answer(query, texts.already(lang, exc.status), alert=True)
        return
    except NotAllowed:
        await answer(query, _("This button is not valid."), alert=True)
        return
    except CancellationClosed:
        # The limit passed while the question was open: ask again, now as a late cancellation.
        await answer(query)
        msg = mine.confirm_cancel(d.practice, appt, lang, free=False)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    await answer(query)
    await edit_quietly(context.bot, chat_id, message_id, text=mine.cancelled_for_client(lang, appt.cancelled_late))
    await notify.cancelled(context.bot, d, appt)
