"""Specialist-facing handlers: Approve, Decline with a reason, the typed reason, and the agenda."""

from __future__ import annotations

import logging
from datetime import timedelta

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import Deps, deps
from bot.dialogs import agenda
from bot.dialogs import draft as drafts
from bot.dialogs import specialist as texts
from bot.dialogs.draft import Draft
from bot.handlers.common import answer, edit_quietly, not_valid
from bot.i18n import gettext_for, pick_language
from scheduling.booking import AlreadyDecided, Lapsed, NotAllowed, NotYet
from scheduling.model import Status
from scheduling.partners import RefusalClosed
from scheduling.store import AppointmentRow
from scheduling.text import clean_text

log = logging.getLogger(__name__)

_ARITY = {"a": 1, "d": 1, "t": 1, "b": 1, "r": 2, "m": 2, "x": 1}
AGENDA_PAST = timedelta(days=7)  # visits still to be marked as attended or not
AGENDA_AHEAD = timedelta(days=7)


def _parse(data: str) -> tuple[str, int, int | None] | None:
    """('a', 12, None) from 's|a|12'; None for anything our buttons never carry."""
    parts = callback.fields(data)
    if parts is None or len(parts) < 3 or parts[0] != "s" or parts[1] not in _ARITY:
        return None
    ids = callback.numbers(parts[2:], _ARITY[parts[1]])
    if ids is None or len(parts) != 2 + len(ids):
        return None
    return parts[1], ids[0], ids[1] if len(ids) > 1 else None


async def _load(d: Deps, appt_id: int) -> AppointmentRow | None:
    async with d.store.tx() as tx:
        return await tx.get_appointment(appt_id)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on a request's Approve, Decline or reason button."""
    query = update.callback_query
    assert query is not None and query.data is not None
    d = deps(context)
    lang = await d.staff_language(query.from_user.id)
    _ = gettext_for(lang)
    parsed = _parse(query.data)
    appt = await _load(d, parsed[1]) if parsed else None
    if parsed is None or appt is None or not d.booking.may_decide(appt, query.from_user.id):
        # Unknown and someone else's get the same answer: ids cannot be probed.
        log.warning("refused callback data %r from someone not allowed or for nothing", query.data[:64])
        await not_valid(query, d)
        return
    verb, appt_id, extra = parsed
    if verb == "m":
        await _mark(update, context, d, appt, extra)
        return
    if verb == "x":
        await _refuse(update, context, d, appt)
        return
    if appt.status != Status.REQUESTED:
        await answer(query, texts.already(lang, appt.status), alert=True)
        await notify.refresh_request(context.bot, d, appt)
        return
    client = None
    async with d.store.tx() as tx:
        client = await tx.get_client(appt.client_id)
    assert client is not None and query.message is not None
    chat_id, message_id = query.message.chat.id, query.message.message_id
    if verb == "a":
        await _decided(update, context, d, _decision(d, appt, query.from_user.id, True), notify.confirmed)
    elif verb == "d":
        await answer(query)
        msg = texts.reasons_message(d.practice, appt, client, lang, await notify.replaced(d, appt))
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
    elif verb == "b":
        await answer(query)
        msg = texts.request_message(d.practice, appt, client, lang, await notify.replaced(d, appt))
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
    elif verb == "r":
        presets = texts.decline_presets(_)
        if extra is None or extra >= len(presets):
            log.warning("refused decline reason %r", query.data[:64])
            await answer(query, _("This button is not valid."), alert=True)
            return
        reason = presets[extra]
        await _decided(
            update,
            context,
            d,
            _decision(d, appt, query.from_user.id, False, reason),
            notify.declined,
        )
    elif verb == "t":
        await answer(query)
        draft, dialog_message = await drafts.load(d.store, chat_id)
        draft = draft or Draft(lang=lang)
        draft.reason_for = appt_id
        await drafts.save(d.store, chat_id, draft, dialog_message)
        await context.bot.send_message(chat_id, texts.type_reason_prompt(lang))


def _decision(d: Deps, appt: AppointmentRow, telegram_id: int, approve: bool, reason: str = ""):  # type: ignore[no-untyped-def]
    """Approve or decline the request; a series' request is decided as a whole."""

    async def run() -> AppointmentRow:
        if appt.series_id is not None:
            _series, decided = await d.series.decide(appt.series_id, telegram_id, approve, reason or None)
            return next((r for r in decided if r.id == appt.id), decided[0])
        if approve:
            return await d.booking.approve(appt.id, telegram_id)
        return await d.booking.decline(appt.id, telegram_id, reason)

    return run


async def _decided(update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, action, tell) -> None:  # type: ignore[no-untyped-def]
    """Run approve/decline, then update the specialist's message and tell the client."""
    query = update.callback_query
    assert query is not None
    lang = await d.staff_language(query.from_user.id)
    _ = gettext_for(lang)
    try:
        appt = await action()
    except Lapsed:
        await answer(query, texts.lapsed(lang), alert=True)
        await notify.expire_due(context.bot, d)  # now, not at the next sweep: the client hears at once
        return
    except AlreadyDecided as exc:
        await answer(query, texts.already(lang, exc.status), alert=True)
        return
    except NotAllowed:
        await answer(query, _("Only the appointment's specialist can do this."), alert=True)
        return
    await answer(query, _("Done."))
    await notify.refresh_request(context.bot, d, appt)
    message = query.message
    if message is not None and message.message_id != appt.request_message_id:
        # Decided from an appointment card: that message shows the outcome too.
        client = await notify.client_of(d, appt)
        msg = texts.request_message(d.practice, appt, client, lang)
        await edit_quietly(context.bot, message.chat.id, message.message_id, text=msg.text, markup=msg.markup)
    await tell(context.bot, d, appt)


async def _refuse(update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, appt: AppointmentRow) -> None:
    """Refuse a partner's booking inside the partner's refusal window; the partner is told."""
    query = update.callback_query
    assert query is not None
    lang = await d.staff_language(query.from_user.id)
    _ = gettext_for(lang)
    try:
        appt = await d.partners.refuse(appt.id, query.from_user.id)
    except RefusalClosed:
        await answer(query, _("The time to refuse this booking has passed; it stays confirmed."), alert=True)
        await notify.refresh_request(context.bot, d, appt)
        return
    except AlreadyDecided as exc:
        await answer(query, texts.already(lang, exc.status), alert=True)
        await notify.refresh_request(context.bot, d, appt)
        return
    except NotAllowed:
        await answer(query, _("Only the appointment's specialist can do this."), alert=True)
        return
    await answer(query, _("Refused. The partner has been told."))
    await notify.refresh_request(context.bot, d, appt)


async def typed_reason(
    update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft, message_id: int | None
) -> None:
    """The specialist typed why they decline: decline with it and tell the client."""
    d = deps(context)
    message = update.effective_message
    user = update.effective_user
    assert message is not None and message.text is not None and user is not None and draft.reason_for is not None
    lang = await d.staff_language(user.id)
    _ = gettext_for(lang)
    appt_id, draft.reason_for = draft.reason_for, None
    await drafts.save(d.store, message.chat.id, draft, message_id)
    reason = clean_text(message.text).strip()[:500]
    try:
        found = await _load(d, appt_id)
        if found is None:
            raise NotAllowed(appt_id)
        appt = await _decision(d, found, user.id, False, reason)()
    except AlreadyDecided as exc:
        await message.reply_text(texts.already(lang, exc.status))
        return
    except NotAllowed:
        await message.reply_text(_("Only the appointment's specialist can do this."))
        return
    await message.reply_text(_("Declined. The client has been told."))
    await notify.refresh_request(context.bot, d, appt)
    await notify.declined(context.bot, d, appt)


async def _agenda_message(d: Deps, telegram_id: int) -> texts.Message | None:
    ids = d.booking.staff_view(telegram_id)
    if ids is None:
        return None
    now = d.booking.clock()
    found: dict[int, AppointmentRow] = {}
    async with d.store.tx() as tx:
        for spec_id in ids:
            # An appointment offered to a colleague is theirs to see too: listed once.
            found |= {a.id: a for a in await tx.active_appointments(spec_id, now - AGENDA_PAST, now + AGENDA_AHEAD)}
    appts = sorted(found.values(), key=lambda a: (a.start, a.id))
    started = {a.id for a in appts if d.booking.has_begun(a)}
    return agenda.agenda(d.practice, appts, await d.staff_language(telegram_id), started=started)


async def show_id(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/id: the sender's Telegram user id, which the practice file needs for a specialist or an admin."""
    d = deps(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    _ = gettext_for(pick_language(user.language_code, d.practice.practice.language))
    known = user.id in d.practice.practice.admins or any(s.telegram_id == user.id for s in d.practice.specialists)
    text = _("Your Telegram user id is {id}.").format(id=user.id)
    if known:
        text += "\n" + _("It is in the practice file already: requests for you arrive in this chat.")
    else:
        text += "\n" + _(
            "If you work at the practice, give it to whoever keeps the practice file: as your telegram_id "
            "there, it makes appointment requests for you arrive in this chat."
        )
    await message.reply_text(text)


async def show_agenda(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The coming week's requests and appointments, with Came / Did not come for visits that have begun."""
    d = deps(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    msg = await _agenda_message(d, user.id)
    if msg is None:
        _ = gettext_for(await d.staff_language(user.id))
        await message.reply_text(_("The agenda is for the practice's specialists."))
        return
    await message.reply_html(msg.text, reply_markup=msg.markup)


async def _mark(
    update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, appt: AppointmentRow, attended: int | None
) -> None:
    """Record that the client came or did not, then show the agenda without that visit's buttons."""
    query = update.callback_query
    assert query is not None and query.message is not None
    lang = await d.staff_language(query.from_user.id)
    _ = gettext_for(lang)
    if attended not in (0, 1):
        log.warning("refused attendance data %r", (query.data or "")[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    try:
        await d.booking.mark(appt.id, query.from_user.id, attended=bool(attended))
    except NotYet:
        await answer(query, _("This visit has not begun yet."), alert=True)
        return
    except AlreadyDecided as exc:
        await answer(query, texts.already(lang, exc.status), alert=True)
        return
    await answer(query, _("Done."))
    msg = await _agenda_message(d, query.from_user.id)
    if msg is not None:
        await edit_quietly(
            context.bot, query.message.chat.id, query.message.message_id, text=msg.text, markup=msg.markup
        )
