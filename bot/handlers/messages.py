"""Messages between a client and a specialist: Message / Reply buttons, the typed text, chat visits relayed."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import Deps, deps
from bot.dialogs import draft as drafts
from bot.dialogs import messages as texts
from bot.dialogs.draft import Draft
from bot.handlers.common import answer
from bot.i18n import gettext_for
from scheduling.messages import MAX_CHARS, MessageNotAllowed, Messages
from scheduling.store import AppointmentRow

log = logging.getLogger(__name__)


async def _language(d: Deps, telegram_id: int, staff: bool) -> str:
    if staff:
        return await d.staff_language(telegram_id)
    async with d.store.tx() as tx:
        client = await tx.client_by_telegram(telegram_id)
    return d.language(client)


async def write_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "Message the specialist" (w|c|id) or "Reply" to a client (w|s|id): ask for the text."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    parts = callback.fields(query.data) or []
    staff = len(parts) == 3 and parts[1] == "s"
    lang = await _language(d, query.from_user.id, staff)
    _ = gettext_for(lang)
    appt = None
    appt_id = callback.number(parts[2]) if len(parts) == 3 and parts[1] in ("c", "s") else None
    if appt_id is not None:
        async with d.store.tx() as tx:
            appt = await tx.get_appointment(appt_id)
    if appt is None or not _party(d, appt, query.from_user.id, staff):
        log.warning("refused callback data %r", query.data[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    if not Messages(d.booking).open_for_messages(appt):
        await answer(query, texts.closed(lang), alert=True)
        return
    await answer(query)
    chat_id = query.message.chat.id
    draft, message_id = await drafts.load(d.store, chat_id)
    draft = draft or Draft(lang=lang)
    draft.message_for, draft.message_staff = appt.id, staff
    await drafts.save(d.store, chat_id, draft, message_id)
    prompt = texts.staff_prompt if staff else texts.client_prompt
    await context.bot.send_message(chat_id, prompt(d.practice, appt, lang), parse_mode="HTML")


def _party(d: Deps, appt: AppointmentRow, telegram_id: int, staff: bool) -> bool:
    """The client of the appointment, or (staff) its specialist or an admin."""
    if staff:
        return d.booking.may_decide(appt, telegram_id)
    return appt.client.telegram_id == telegram_id


async def typed(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft, message_id: int | None) -> None:
    """The text of a message the person was asked for: queue it, deliver it, say so."""
    d = deps(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and message.text is not None and user is not None and draft.message_for is not None
    appt_id, staff = draft.message_for, draft.message_staff
    draft.message_for, draft.message_staff = None, False
    await drafts.save(d.store, message.chat.id, draft, message_id)
    lang = await _language(d, user.id, staff)
    sent = await _write(d, appt_id, message.text, user.id, staff)
    if sent is None:
        await message.reply_text(texts.closed(lang))
        return
    await notify.deliver_message(context.bot, d, sent)
    cut = MAX_CHARS if len(message.text.strip()) > MAX_CHARS else None
    await message.reply_text(texts.sent(lang, cut=cut))


async def _write(d: Deps, appt_id: int, text: str, telegram_id: int, staff: bool):  # type: ignore[no-untyped-def]
    messages = Messages(d.booking)
    try:
        if staff:
            return await messages.write(appt_id, text, telegram_id=telegram_id)
        async with d.store.tx() as tx:
            client = await tx.client_by_telegram(telegram_id)
        return await messages.write(appt_id, text, client_id=client.id if client else -1)
    except MessageNotAllowed:
        return None


async def relay(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """During a chat visit, plain text goes to the other party as it is; False when no chat visit is on."""
    d = deps(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and message.text is not None and user is not None
    messages = Messages(d.booking)
    staff = d.booking.staff_view(user.id) is not None
    appt = await messages.chat_visit_of_staff(user.id) if staff else None
    if appt is None:
        async with d.store.tx() as tx:
            client = await tx.client_by_telegram(user.id)
        appt = await messages.chat_visit_of_client(client.id) if client is not None else None
        staff = False
    if appt is None:
        return False
    sent = await _write(d, appt.id, message.text, user.id, staff)
    if sent is None:
        return False
    await notify.deliver_message(context.bot, d, sent)
    return True
