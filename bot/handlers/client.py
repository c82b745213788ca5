"""Client-facing handlers: /start, /book, /cancel, the booking dialog's buttons, typed text and contacts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from telegram import ReplyKeyboardRemove, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import Deps, deps
from bot.dialogs import booking as dialog
from bot.dialogs import draft as drafts
from bot.dialogs import specialist as texts
from bot.dialogs.draft import Draft
from bot.handlers import messages as message_handlers
from bot.handlers import specialist as specialist_handlers
from bot.handlers import workspace
from bot.handlers.common import answer, edit_quietly
from bot.i18n import gettext_for, pick_language
from bot.slots import leave_slot
from scheduling.model import Status
from scheduling.store import AppointmentRow, ClientRow, QuickTx
from scheduling.text import clean_text

log = logging.getLogger(__name__)

_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def client_of(d: Deps, update: Update) -> ClientRow:
    """The person writing, as a client record (created on first contact, in their language)."""
    async with d.store.quick() as tx:
        return await _client_in(tx, d, update)


async def _client_in(tx: QuickTx, d: Deps, update: Update) -> ClientRow:
    user = update.effective_user
    assert user is not None
    client = await tx.client_by_telegram(user.id)
    if client is None:
        client = await tx.first_contact(user.id, pick_language(user.language_code, d.practice.practice.language))
    return client


async def client_and_draft(d: Deps, update: Update) -> tuple[ClientRow, Draft | None, int | None]:
    """client_of() and the chat's draft in one transaction: one round trip less on every tap."""
    async with d.store.quick() as tx:
        client = await _client_in(tx, d, update)
        draft, message_id = await drafts.read(tx, update.effective_chat.id)  # type: ignore[union-attr]
    return client, draft, message_id


async def _show(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    d: Deps,
    c: dialog.Ctx,
    screen: dialog.Screen,
    message_id: int | None,
    *,
    new_message: bool,
) -> None:
    """Show a screen: edit the dialog's message in place, or send a new one after typed input.

    The draft is saved before the screen is shown: a tap on the new screen, whichever process receives it,
    finds the step that screen belongs to.
    """
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    bot, _ = context.bot, c._
    in_place = not (new_message or screen.ask_contact) and message_id is not None
    remove_keyboard = not screen.ask_contact and not in_place and c.draft.reply_keyboard
    c.draft.reply_keyboard = screen.ask_contact or (c.draft.reply_keyboard and in_place)
    await _remember(d, chat_id, c.draft, screen, message_id if in_place else None)
    if not in_place and message_id:
        await edit_quietly(bot, chat_id, message_id, markup=None)
    if in_place:
        assert message_id is not None
        await edit_quietly(bot, chat_id, message_id, text=screen.text, markup=screen.markup)
        return
    if screen.ask_contact:
        # A reply keyboard cannot be attached by editing, so the phone question is a new message,
        # followed by one that carries the dialog's own buttons.
        await bot.send_message(chat_id, screen.text, parse_mode=ParseMode.HTML, reply_markup=dialog.contact_keyboard(_))
        message_id = (await bot.send_message(chat_id, _("Or go back:"), reply_markup=screen.markup)).message_id
    else:
        if remove_keyboard:
            await bot.send_message(chat_id, _("Thank you."), reply_markup=ReplyKeyboardRemove())
        sent = await bot.send_message(chat_id, screen.text, parse_mode=ParseMode.HTML, reply_markup=screen.markup)
        message_id = sent.message_id
    if not screen.done:
        await drafts.point_at(d.store, chat_id, message_id)  # now that the new message has its id


async def _remember(d: Deps, chat_id: int, draft: Draft, screen: dialog.Screen, message_id: int | None) -> None:
    """Save the draft and the message its buttons are on, or forget it once the dialog is done."""
    if screen.done:
        async with d.store.quick() as tx:
            await tx.delete_draft(chat_id)
    else:
        await drafts.save(d.store, chat_id, draft, message_id)


async def _begin(
    update: Update, context: ContextTypes.DEFAULT_TYPE, payload: str | None, client: ClientRow | None = None
) -> None:
    d = deps(context)
    if client is None:
        client = await client_of(d, update)
    draft = Draft(lang=d.language(client))
    preselect = dict(part.split("-", 1) for part in (payload or "").split("__") if "-" in part)
    dialog.begin(
        draft,
        location=preselect.get("l"),
        service=preselect.get("s"),
        specialist=preselect.get("p"),
        practice=d.practice,
    )
    draft.source = payload
    c = dialog.Ctx(d.practice, d.booking, draft, client)
    screen = await dialog.render(c)
    await _show(update, context, d, c, screen, None, new_message=True)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet in the client's language and open the booking dialog; a deep-link payload is the booking source."""
    d = deps(context)
    client = await client_of(d, update)
    _ = gettext_for(d.language(client))
    payload = context.args[0] if context.args else None
    if payload is not None and not _PAYLOAD.match(payload):
        payload = None
    user_id = update.effective_user.id  # type: ignore[union-attr]
    staff = user_id in d.practice.practice.admins or any(s.telegram_id == user_id for s in d.practice.specialists)
    if staff and payload is None:
        await update.effective_message.reply_text(  # type: ignore[union-attr]
            _(
                "Hello! Appointment requests for you will arrive here, with buttons to approve or decline them. "
                "/agenda shows your week, /new books a visit for a client, /find finds a client's appointments. "
                "Send /book to book an appointment yourself."
            )
        )
        return
    await update.effective_message.reply_text(  # type: ignore[union-attr]
        _("Hello! I book appointments at {practice}.").format(practice=d.practice.practice.name)
    )
    await _begin(update, context, payload, client)  # the client just read: not read again


async def book(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Open a new booking dialog."""
    await _begin(update, context, None)


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Abandon the dialog under way, if any."""
    d = deps(context)
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    draft, message_id = await drafts.load(d.store, chat_id)
    client = await client_of(d, update)
    _ = gettext_for(d.language(client))
    if draft is not None and draft.message_for is not None:
        # Only the message being typed is dropped; a booking under way stays.
        draft.message_for, draft.message_staff = None, False
        await drafts.save(d.store, chat_id, draft, message_id)
        await update.effective_message.reply_text(_("The message was not sent."))  # type: ignore[union-attr]
        return
    async with d.store.quick() as tx:
        await tx.delete_draft(chat_id)
    if message_id:
        await edit_quietly(context.bot, chat_id, message_id, markup=None)
    text = _("Booking cancelled. Send /book to start again.") if draft and draft.active else _("Nothing to cancel.")
    await update.effective_message.reply_text(text, reply_markup=ReplyKeyboardRemove())  # type: ignore[union-attr]


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on one of the booking dialog's buttons."""
    query = update.callback_query
    assert query is not None and query.data is not None
    d = deps(context)
    client, draft, message_id = await client_and_draft(d, update)
    _ = gettext_for(d.language(client))
    parts = callback.fields(query.data) or []
    verb, arg = [*parts, "", "", ""][1:3]
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    if verb == "noop":
        await answer(query, _("No free times on this day.") if arg == "day" else None)
        return
    if verb == "again" and (again := callback.number(arg)) is not None:
        await answer(query)
        await _again(update, context, d, client, again)
        return
    if draft is None or not draft.active or query.message is None or query.message.message_id != message_id:
        await answer(query, _("This button is out of date. Send /book to start again."), alert=True)
        return
    if verb == "cancel":
        await answer(query)
        async with d.store.quick() as tx:
            await tx.delete_draft(chat_id)
        await edit_quietly(context.bot, chat_id, message_id, text=_("Booking cancelled. Send /book to start again."))
        return
    c = dialog.Ctx(d.practice, d.booking, draft, client)
    held = bool(draft.pending)  # contact details waiting for the client's consent
    async with contextlib.AsyncExitStack() as stack:
        if verb == "send":
            # Sending waits for the calendar: the tap is answered first, so Telegram stops its spinner now.
            await answer(query)
            # A crowd sending to one specialist waits for that specialist's turns, outside the update slots.
            leave_slot()
            await stack.enter_async_context(d.booking.turn(draft.assigned or ""))
        try:
            screen = await dialog.on_button(c, verb, arg)
        except dialog.Forged:
            log.warning("refused callback data %r", query.data[:64])
            if verb != "send":
                await answer(query, _("This button is not valid."), alert=True)
            return
        shown = _show(update, context, d, c, screen, message_id, new_message=False)
        if verb == "send":
            await shown
        else:
            # Answered after the step ran, so that refused data can still get its alert; the answer and the new
            # screen go out side by side, so the person waits for one round trip to Telegram, not two.
            await asyncio.gather(answer(query), shown)
    if held and not c.draft.pending:
        # The details just reached the client's record: link the practice's own record of them.
        await workspace.after_contact(context.bot, d, client.id)
    if screen.booked is not None:
        await notify.ask_specialist(context.bot, d, screen.booked, screen.booked.client)
        if screen.booked.status == Status.CONFIRMED:
            await notify.confirmed(context.bot, d, screen.booked)  # the service approves its requests itself


async def _again(update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, client: ClientRow, appt_id: int) -> None:
    """After a decline or expiry: a fresh dialog with the same service and place.

    The same specialist is preselected unless the booking was "first available" or they asked the
    client to choose someone else; "first available" never lands on a specialist who declined.
    """
    async with d.store.tx() as tx:
        appt = await tx.get_appointment(appt_id)
    if appt is None or appt.client_id != client.id:
        log.warning("refused 'again' for appointment %s by someone else", appt_id)
        return
    draft = Draft(lang=d.language(client), source=appt.source)
    declined = appt.status == Status.DECLINED
    other = declined and texts.asks_for_another_specialist(appt.decline_reason)
    dialog.begin(
        draft,
        location=appt.location_id,
        service=appt.service_id,
        specialist=None if appt.first_available or other else appt.specialist_id,
        practice=d.practice,
    )
    if declined:
        draft.avoid = [appt.specialist_id]
    if appt.first_available and not other and draft.step == "specialist":
        draft.specialist, draft.step = "*", "day"
    c = dialog.Ctx(d.practice, d.booking, draft, client)
    await _show(update, context, d, c, await dialog.render(c), None, new_message=True)


async def begin_move(
    update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, client: ClientRow, appt: AppointmentRow
) -> None:
    """Open the day and time pickers to move a confirmed visit, in a new dialog message."""
    draft = Draft(lang=d.language(client), source=appt.source)
    dialog.begin_move(draft, appt, practice=d.practice)
    c = dialog.Ctx(d.practice, d.booking, draft, client)
    await _show(update, context, d, c, await dialog.render(c), None, new_message=True)


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Typed text: a note or contact detail for the dialog, or a specialist's decline reason."""
    d = deps(context)
    message = update.effective_message
    assert message is not None and message.text is not None
    chat_id = update.effective_chat.id  # type: ignore[union-attr]
    async with d.store.quick() as tx:
        # The client as far as known, in the draft's transaction: a staff member's typing creates no client record.
        known = await tx.client_by_telegram(update.effective_user.id)  # type: ignore[union-attr]
        draft, message_id = await drafts.read(tx, chat_id)
    if draft is not None and draft.reason_for is not None:
        await specialist_handlers.typed_reason(update, context, draft, message_id)
        return
    if draft is not None and draft.message_for is not None:
        await message_handlers.typed(update, context, draft, message_id)
        return
    if (draft is None or not draft.active) and await message_handlers.relay(update, context):
        return  # a chat visit is on: the text went to the other party
    if draft is not None and draft.work and await workspace.typed(update, context, draft):
        return
    client = known or await client_of(d, update)
    _ = gettext_for(d.language(client))
    if draft is None or not draft.active:
        await message.reply_text(_("Send /book to book an appointment."))
        return
    c = dialog.Ctx(d.practice, d.booking, draft, client)
    asked = draft.contact_stage if draft.step == "contact" else None
    screen = await dialog.on_text(c, clean_text(message.text))
    if screen is None:
        await message.reply_text(_("Please use the buttons above, or send /cancel to stop."))
        return
    await _show(update, context, d, c, screen, message_id, new_message=True)
    if asked in ("phone", "email") and draft.contact_stage != asked and asked not in draft.pending:
        # The detail reached the client's record (one held for their consent is linked once they agree).
        await workspace.after_contact(context.bot, d, client.id)


async def contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A phone number shared with Telegram's button."""
    d = deps(context)
    message = update.effective_message
    assert message is not None and message.contact is not None
    client, draft, message_id = await client_and_draft(d, update)
    _ = gettext_for(d.language(client))
    own = message.contact.user_id == update.effective_user.id  # type: ignore[union-attr]
    if draft is None or not draft.active or draft.contact_stage != "phone" or not own:
        await message.reply_text(_("Please share your own number while booking."), reply_markup=ReplyKeyboardRemove())
        return
    c = dialog.Ctx(d.practice, d.booking, draft, client)
    screen = await dialog.on_phone(c, message.contact.phone_number)
    await _show(update, context, d, c, screen, message_id, new_message=True)
    if draft.contact_stage != "phone" and "phone" not in draft.pending:
        # The number reached the client's record (one held for their consent is linked once they agree).
        await workspace.after_contact(context.bot, d, client.id)
