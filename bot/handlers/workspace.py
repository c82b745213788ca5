"""The specialist's workspace in Telegram: /new, /find, appointment cards and their actions, client records,
proposals answered by clients, and linking records. Handlers parse and delegate to scheduling/."""

from __future__ import annotations

import logging

from telegram import Bot, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot import callback, notify
from bot.deps import Deps, deps
from bot.dialogs import new_visit as flow
from bot.dialogs import privacy as privacy_texts
from bot.dialogs import series_staff
from bot.dialogs import waitlist as waitlist_texts
from bot.dialogs import work as works
from bot.dialogs import workspace as screens
from bot.dialogs.card import card
from bot.dialogs.draft import Draft
from bot.dialogs.specialist import Message, already, lapsed
from bot.dialogs.work import Work
from bot.handlers.common import answer, edit_quietly
from bot.i18n import gettext_for, pick_language
from scheduling.booking import AlreadyDecided, Lapsed, NotYet
from scheduling.booking import NotAllowed as Refused
from scheduling.model import Flag, Status
from scheduling.staff import NotAllowed, Staff, staff_member
from scheduling.staff_changes import Moved
from scheduling.store import AppointmentRow, ClientRow

log = logging.getLogger(__name__)

FIND_LIMIT = 20


async def _lang(d: Deps, update: Update) -> str:
    """The staff member's language: what Telegram says now, remembered for messages the bot sends later."""
    user = update.effective_user
    assert user is not None
    async with d.store.tx() as tx:
        row = await tx.client_by_telegram(user.id)
        if row is None or row.language is None:
            row = await tx.upsert_client(
                user.id, language=pick_language(user.language_code, d.practice.practice.language)
            )
    return d.language(row)


async def card_message(d: Deps, appt_id: int, staff: Staff, lang: str) -> Message:
    """The appointment's card for this staff member; raises NotAllowed when it is not theirs to see."""
    appt, _ = await d.staff_changes.load(appt_id, staff.telegram_id)
    async with d.store.tx() as tx:
        client = await tx.get_client(appt.client_id)
        notes = await tx.notes(appointment_id=appt.id)
        history = await tx.transitions(appt.id)
        series = await tx.get_series(appt.series_id) if appt.series_id is not None else None
        rows = await tx.series_rows(appt.series_id) if appt.series_id is not None else []
        participants = await tx.group_seats(appt.group_id) if appt.group_id is not None else []
    assert client is not None
    waiting = waitlist_texts.waiting_lines(d.practice, await d.waitlist.waiting_for_staff(staff, client.id), lang)
    recurring = series_staff.position(gettext_for(lang), series, rows, appt) if series is not None else None
    begun = d.booking.has_begun(appt)
    return card(
        d.practice,
        appt,
        client,
        notes,
        history,
        staff,
        begun=begun,
        lang=lang,
        series=recurring,
        participants=participants,
        waiting=waiting,
    )


async def _send(bot: Bot, chat_id: int, msg: Message) -> int:
    sent = await bot.send_message(chat_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup)
    return sent.message_id


# --- commands -------------------------------------------------------------------------------------


async def new_visit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/new: book a visit on a client's behalf."""
    d = deps(context)
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    lang = await _lang(d, update)
    staff = staff_member(d.practice, user.id)
    if staff is None:
        await context.bot.send_message(chat.id, gettext_for(lang)("This is for the practice's specialists."))
        return
    await start_new(context.bot, d, chat.id, staff, lang)


async def start_new(bot: Bot, d: Deps, chat_id: int, staff: Staff, lang: str) -> None:
    draft, _ = await works.load(d.store, chat_id)
    c = flow.Ctx(d, staff, Work(), lang)
    flow.begin(c, "new")
    screen = await flow.render(c)
    c.work.message = await _send(bot, chat_id, Message(screen.text, screen.markup))
    await works.save(d.store, chat_id, draft, c.work)


async def find(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/find <name or phone>: the matching clients' appointments, each opening its card."""
    d = deps(context)
    user, message = update.effective_user, update.effective_message
    assert user is not None and message is not None
    lang = await _lang(d, update)
    _ = gettext_for(lang)
    staff = staff_member(d.practice, user.id)
    if staff is None:
        await message.reply_text(_("This is for the practice's specialists."))
        return
    query = " ".join(context.args or [])
    if len(query.strip()) < 2:
        await message.reply_text(_("Send /find and part of a client's name or phone number, e.g. /find Nowak."))
        return
    visible = await d.records.search_visible(user.id, query)
    async with d.store.tx() as tx:
        appts = await tx.staff_appointments(staff.specialist_ids, client_ids=[c.id for c in visible])
    past = sum(1 for a in appts if a.end <= d.booking.clock())
    msg = screens.found(d.practice, query, visible, appts, lang, now_index=past, limit=FIND_LIMIT)
    await message.reply_html(msg.text, reply_markup=msg.markup)


# --- card buttons ---------------------------------------------------------------------------------


def _parse(data: str) -> tuple[str, list[str]] | None:
    parts = callback.fields(data)
    if parts is None or len(parts) < 2 or parts[0] != "k":
        return None
    return parts[1], parts[2:]


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on a workspace button (`k|...`): a card, one of its actions, a client record, a link decision."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    lang = await _lang(d, update)
    _ = gettext_for(lang)
    staff = staff_member(d.practice, query.from_user.id)
    parsed = _parse(query.data)
    if staff is None or parsed is None:
        log.warning("refused workspace data %r", query.data[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    verb, args = parsed
    chat_id, message_id = query.message.chat.id, query.message.message_id
    try:
        await _act(update, context, d, staff, lang, verb, args, chat_id, message_id)
    except NotAllowed:
        log.warning("refused workspace action %r by someone not allowed", query.data[:64])
        await answer(query, _("Only the appointment's specialist can do this."), alert=True)
    except Lapsed:
        await answer(query, lapsed(lang), alert=True)
        await notify.expire_due(context.bot, d)
        await _show_card(context.bot, d, staff, lang, chat_id, message_id, int(args[0]))
    except AlreadyDecided as exc:
        await answer(query, already(lang, exc.status), alert=True)
    except Moved:
        await answer(query, _("Nothing changed: this appointment has changed meanwhile."), alert=True)


async def _show_card(bot: Bot, d: Deps, staff: Staff, lang: str, chat_id: int, message_id: int, appt_id: int) -> None:
    msg = await card_message(d, appt_id, staff, lang)
    await edit_quietly(bot, chat_id, message_id, text=msg.text, markup=msg.markup)


async def _act(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    d: Deps,
    staff: Staff,
    lang: str,
    verb: str,
    args: list[str],
    chat_id: int,
    message_id: int,
) -> None:
    query = update.callback_query
    assert query is not None
    bot, _ = context.bot, gettext_for(lang)
    if verb == "new":
        await answer(query)
        await start_new(bot, d, chat_id, staff, lang)
        return
    if verb == "cl" and (ids := callback.numbers(args, 1)):
        client, _staff = await d.records.card(staff.telegram_id, ids[0])
        await answer(query)
        await _send(bot, chat_id, await client_record(d, client, staff, lang))
        return
    if verb == "cx" and (ids := callback.numbers(args, 2)):
        # A client record with one series unfolded, in place of the list it was asked from.
        client, _staff = await d.records.card(staff.telegram_id, ids[0])
        await answer(query)
        msg = await client_record(d, client, staff, lang, expand=ids[1])
        await edit_quietly(bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    if verb in ("ln", "lk"):
        await _link_decision(update, context, d, staff, lang, verb, args)
        return
    if verb in ("er", "ery") and (ids := callback.numbers(args, 1)):
        await _erase_client(update, context, d, staff, lang, verb == "ery", ids[0])
        return
    ids = callback.numbers(args, 1)
    if ids is None:
        raise NotAllowed(args)
    appt_id = ids[0]
    if verb == "c":
        msg = await card_message(d, appt_id, staff, lang)
        await answer(query)
        await _send(bot, chat_id, msg)
        return
    appt, _staff = await d.staff_changes.load(appt_id, staff.telegram_id)
    if verb in ("ry", "rn"):
        await _handover_answer(update, context, d, staff, lang, verb, appt_id, chat_id, message_id)
        return
    if not staff.may_act(appt):
        raise NotAllowed(appt_id)
    if verb == "a" and appt.series_id is not None:
        # A series is asked for as a whole and approved as a whole.
        _series, decided = await d.series.decide(appt.series_id, staff.telegram_id, approve=True)
        appt = next((r for r in decided if r.id == appt_id), decided[0])
        await answer(query, _("Done."))
        await notify.refresh_request(bot, d, appt)
        await notify.confirmed(bot, d, appt)
    elif verb == "a":
        appt = await d.booking.approve(appt_id, staff.telegram_id)
        await answer(query, _("Done."))
        await notify.refresh_request(bot, d, appt)
        await notify.confirmed(bot, d, appt)
    elif verb == "k" and args[1:2] in (["0"], ["1"]):
        try:
            await d.booking.mark(appt_id, staff.telegram_id, attended=args[1] == "1")
        except NotYet:
            await answer(query, _("This visit has not begun yet."), alert=True)
            return
        await answer(query, _("Done."))
        if args[2:3] and args[2].isdigit():
            # A participant marked from a group session's card: that card is shown again (if theirs to see).
            appt_id = (await d.staff_changes.load(int(args[2]), staff.telegram_id))[0].id
    elif verb == "f" and args[1:2] and args[1] in Flag.__members__.values():
        flagged = await d.staff_changes.toggle_flag(appt_id, staff.telegram_id, Flag(args[1]))
        await d.waitlist.follow_asap(flagged)  # ASAP on: the visit waits for an earlier time; off: no more
        await answer(query)
    elif verb == "i":
        if appt.status not in (Status.CONFIRMED, Status.PROPOSED):
            raise AlreadyDecided(Status(appt.status))
        await notify.send_ics_again(bot, d, appt)
        await answer(query, _("Sent."))
        return
    elif verb in ("mv", "cx", "ar"):
        await answer(query)
        name = {"mv": "move", "cx": "cancel", "ar": "recur"}[verb]
        await _begin_flow(bot, d, staff, lang, chat_id, message_id, name, appt_id)
        return
    elif verb == "n":
        await answer(query)
        draft, _work = await works.load(d.store, chat_id)
        await works.save(d.store, chat_id, draft, Work(flow="note", expect="note", appt=appt_id, message=message_id))
        await bot.send_message(chat_id, _("Type the note. Only the practice's staff will see it."))
        return
    elif verb == "ra":
        free = await d.staff_changes.colleagues(appt_id, staff.telegram_id)
        await answer(query)
        msg = screens.colleagues(d.practice, appt, free, lang)
        await edit_quietly(bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    elif verb == "rt" and args[1:2] and args[1] in d.practice.specialist_by_id:
        appt = await d.staff_changes.offer(appt_id, staff.telegram_id, args[1])
        await answer(query, _("Asked. The appointment stays with you until they answer."), alert=True)
        await notify.handover_offered(bot, d, appt)
    elif verb == "del":
        if not staff.admin:
            raise NotAllowed(appt_id)
        await answer(query)
        msg = screens.confirm_delete(appt, lang)
        await edit_quietly(bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    elif verb in ("dall", "dally"):
        await _decline_all(update, context, d, staff, lang, verb == "dally", appt, chat_id, message_id)
        return
    elif verb == "dely":
        appt = await d.staff_changes.delete(appt_id, staff.telegram_id)
        await answer(query, _("Deleted."))
        await notify.refresh_request(bot, d, appt)
        await edit_quietly(bot, chat_id, message_id, text=_("Appointment #{id} was deleted.").format(id=appt_id))
        return
    else:
        raise NotAllowed(verb)
    await _show_card(bot, d, staff, lang, chat_id, message_id, appt_id)


async def _decline_all(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    d: Deps,
    staff: Staff,
    lang: str,
    confirmed: bool,
    appt: AppointmentRow,
    chat_id: int,
    message_id: int,
) -> None:
    """An admin declines all of one client's undecided requests: asked to confirm first, the client told once."""
    query = update.callback_query
    assert query is not None
    if not staff.admin:
        raise NotAllowed(appt.id)
    async with d.store.tx() as tx:
        client = await tx.get_client(appt.client_id)
        pending = await tx.pending_requests(appt.client_id)
    assert client is not None
    if not pending:
        raise AlreadyDecided(Status(appt.status))
    if not confirmed:
        await answer(query)
        msg = screens.confirm_decline_all(appt, client, pending, lang)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    declined = await d.booking.decline_all(appt.client_id, staff.telegram_id)
    if not declined:
        raise AlreadyDecided(Status(appt.status))
    await answer(query, gettext_for(lang)("Done."))
    await edit_quietly(context.bot, chat_id, message_id, text=screens.all_declined(client, len(declined), lang))
    await notify.all_declined(context.bot, d, client, declined)


async def _handover_answer(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    d: Deps,
    staff: Staff,
    lang: str,
    verb: str,
    appt_id: int,
    chat_id: int,
    message_id: int,
) -> None:
    """The colleague takes the appointment over or refuses; the one who asked may also withdraw."""
    query = update.callback_query
    assert query is not None
    _ = gettext_for(lang)
    before, _staff = await d.staff_changes.load(appt_id, staff.telegram_id)
    owner, colleague = before.specialist_id, before.reassign_to
    if colleague is None:
        raise AlreadyDecided(Status(before.status))
    if verb == "ry":
        appt, owner = await d.staff_changes.take_over(appt_id, staff.telegram_id)
    else:
        appt = await d.staff_changes.refuse(appt_id, staff.telegram_id)
    await answer(query, _("Done."))
    if staff.may_act(appt):
        await _show_card(context.bot, d, staff, lang, chat_id, message_id, appt_id)
    else:
        owner_name = d.practice.specialist_by_id[owner].name
        text = _("You refused; the appointment stays with {name}.").format(name=owner_name)
        await edit_quietly(context.bot, chat_id, message_id, text=text)
    asked_by_me = staff.may_act(before) and verb == "rn" and staff.own != colleague
    if not asked_by_me:
        await notify.handover_decided(context.bot, d, appt, owner=owner, colleague=colleague)
    await notify.refresh_request(context.bot, d, appt)


async def client_record(d: Deps, client: ClientRow, staff: Staff, lang: str, expand: int | None = None) -> Message:
    now = d.booking.clock()
    async with d.store.tx() as tx:
        appts = await tx.staff_appointments(staff.specialist_ids, client_ids=[client.id])
        notes = await tx.notes(client_id=client.id)
    past = sum(1 for a in appts if a.end <= now)
    waiting = waitlist_texts.waiting_lines(d.practice, await d.waitlist.waiting_for_staff(staff, client.id), lang)
    msg = screens.client_card(d.practice, client, appts, notes, lang, now_index=past, expand=expand, waiting=waiting)
    if staff.admin and client.erased_at is None:
        msg = privacy_texts.with_erase_button(msg, client.id, lang)
    return msg


async def _erase_client(
    update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, staff: Staff, lang: str, sure: bool, client_id: int
) -> None:
    """An admin erases a client's data (asked by phone, or a record of someone who never used the bot)."""
    query = update.callback_query
    assert query is not None and query.message is not None
    if not staff.admin:
        raise NotAllowed(client_id)
    await answer(query)
    chat_id, message_id = query.message.chat.id, query.message.message_id
    if not sure:
        upcoming = privacy_texts.overview_upcoming(await d.privacy.export(client_id), d.booking.clock())
        msg = privacy_texts.confirm_erase_client(client_id, upcoming, lang)
        await edit_quietly(context.bot, chat_id, message_id, text=msg.text, markup=msg.markup)
        return
    done = await d.privacy.erase(client_id, actor=staff.actor)
    await edit_quietly(context.bot, chat_id, message_id, text=privacy_texts.client_erased(len(done.cancelled), lang))
    await notify.erased(context.bot, d, done)


async def _link_decision(
    update: Update, context: ContextTypes.DEFAULT_TYPE, d: Deps, staff: Staff, lang: str, verb: str, args: list[str]
) -> None:
    """An admin links a new bot user to one of several matching records, or keeps them apart."""
    query = update.callback_query
    assert query is not None and query.message is not None
    _ = gettext_for(lang)
    if not staff.admin:
        raise NotAllowed(verb)
    if verb == "ln":
        ids = callback.numbers(args, 2)
        if ids is None:
            raise NotAllowed(args)
        record = await d.records.link_chosen(staff.telegram_id, ids[0], ids[1])
        text = _("Linked: {name} now sees their appointments in the bot.").format(name=record.name or "")
    else:
        text = _("Kept apart. Nothing was linked.")
    await answer(query, _("Done."))
    await edit_quietly(context.bot, query.message.chat.id, query.message.message_id, text=text)


# --- the staff dialogs (v|...) ----------------------------------------------------------------------


async def _begin_flow(
    bot: Bot, d: Deps, staff: Staff, lang: str, chat_id: int, message_id: int, name: str, appt_id: int
) -> None:
    """Moving or cancelling from a card: the card's message becomes the dialog."""
    appt, _staff = await d.staff_changes.load(appt_id, staff.telegram_id)
    draft, _work = await works.load(d.store, chat_id)
    c = flow.Ctx(d, staff, Work(message=message_id), lang)
    flow.begin(c, name, appt)
    screen = await flow.render(c)
    await edit_quietly(bot, chat_id, message_id, text=screen.text, markup=screen.markup)
    await works.save(d.store, chat_id, draft, c.work)


async def flow_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap in /new, moving or cancelling (`v|verb|arg`)."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    lang = await _lang(d, update)
    _ = gettext_for(lang)
    chat_id, message_id = query.message.chat.id, query.message.message_id
    staff = staff_member(d.practice, query.from_user.id)
    draft, work = await works.load(d.store, chat_id)
    parts = callback.fields(query.data) or []
    verb, arg = [*parts, "", "", ""][1:3]
    if staff is None or not work.flow or work.message != message_id:
        await answer(query, _("This button is out of date."), alert=True)
        return
    if verb == "noop":
        await answer(query)
        return
    if verb == "x":
        await answer(query)
        await works.save(d.store, chat_id, draft, None)
        if work.appt is not None and work.flow != "new":
            await _show_card(context.bot, d, staff, lang, chat_id, message_id, work.appt)
        else:
            await edit_quietly(context.bot, chat_id, message_id, text=_("Stopped. Nothing was saved."))
        return
    c = flow.Ctx(d, staff, work, lang)
    try:
        outcome = await flow.on_button(c, verb, arg)
    except flow.Forged:
        log.warning("refused staff dialog data %r", query.data[:64])
        await answer(query, _("This button is not valid."), alert=True)
        return
    except (NotAllowed, Refused):
        await answer(query, _("Only the appointment's specialist can do this."), alert=True)
        return
    except AlreadyDecided:
        # The visit changed while the dialog was open (e.g. cancelled elsewhere): nothing to show for it now.
        await answer(query, _("Nothing changed: this appointment has changed meanwhile."), alert=True)
        return
    await answer(query)
    await _shown(context.bot, d, c, draft, outcome, chat_id, message_id, edit=True)


async def _shown(
    bot: Bot, d: Deps, c: flow.Ctx, draft: Draft, outcome: flow.Outcome, chat_id: int, message_id: int, *, edit: bool
) -> None:
    """Show the dialog's next screen; when it ended, tell the people concerned and show the card."""
    screen = outcome.screen
    if not screen.done:
        if edit:
            await edit_quietly(bot, chat_id, message_id, text=screen.text, markup=screen.markup)
        else:
            await edit_quietly(bot, chat_id, message_id, markup=None)
            c.work.message = await _send(bot, chat_id, Message(screen.text, screen.markup))
        await works.save(d.store, chat_id, draft, c.work)
        return
    await works.save(d.store, chat_id, draft, None)
    appt_id = c.work.appt
    if outcome.booked is not None:
        appt_id = outcome.booked.id
        if outcome.booked.status == Status.PROPOSED:
            await notify.proposed(bot, d, outcome.booked)
        elif outcome.booked.series_id is not None:
            if c.work.flow == "recur":
                await notify.refresh_request(bot, d, outcome.booked)
            await notify.confirmed(bot, d, outcome.booked)  # the course's dates and its .ics
    elif outcome.moved is not None:
        await notify.moved_by_staff(bot, d, outcome.moved)
    elif outcome.cancelled is not None:
        await notify.cancelled_by_staff(bot, d, outcome.cancelled, tell=c.work.tell, reason=c.work.reason)
    elif outcome.series is not None:
        await notify.series_by_staff(bot, d, outcome.series, tell=c.work.tell, reason=c.work.reason)
    text = screen.text
    if appt_id is not None:
        try:
            msg = await card_message(d, appt_id, c.staff, c.lang)
            text = f"<b>{screen.text}</b>\n\n{msg.text}"
            markup = msg.markup
        except NotAllowed:
            markup = None
    else:
        markup = None
    if edit:
        await edit_quietly(bot, chat_id, message_id, text=text, markup=markup)
    else:
        await edit_quietly(bot, chat_id, message_id, markup=None)
        await _send(bot, chat_id, Message(text, markup))


async def typed(update: Update, context: ContextTypes.DEFAULT_TYPE, draft: Draft) -> bool:
    """Typed text for a staff dialog; False when no staff dialog waits for text."""
    d = deps(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and message.text is not None and user is not None
    work = Work.from_dict(draft.work)
    staff = staff_member(d.practice, user.id)
    if staff is None or not work.expect:
        return False
    lang = await _lang(d, update)
    _ = gettext_for(lang)
    chat_id = message.chat.id
    if work.flow == "note":
        await works.save(d.store, chat_id, draft, None)
        assert work.appt is not None
        try:
            await d.staff_changes.add_note(work.appt, user.id, message.text)
            msg = await card_message(d, work.appt, staff, lang)
        except (NotAllowed, ValueError):
            await message.reply_text(_("Nothing changed: this appointment has changed meanwhile."))
            return True
        await message.reply_html(_("Note saved.") + "\n\n" + msg.text, reply_markup=msg.markup)
        return True
    c = flow.Ctx(d, staff, work, lang)
    try:
        outcome = await flow.on_text(c, message.text)
    except NotAllowed:
        await message.reply_text(_("Only the appointment's specialist can do this."))
        return True
    if outcome is None:
        return False
    assert work.message is not None
    await _shown(context.bot, d, c, draft, outcome, chat_id, work.message, edit=False)
    return True


# --- the client's side ------------------------------------------------------------------------------


async def proposal(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The client accepts or declines a visit the practice proposed (`p|y|id`, `p|n|id`)."""
    query = update.callback_query
    assert query is not None and query.data is not None and query.message is not None
    d = deps(context)
    async with d.store.tx() as tx:
        client = await tx.client_by_telegram(query.from_user.id)
    _ = gettext_for(d.language(client))
    parts = callback.fields(query.data) or []
    appt_id = callback.number(parts[2]) if len(parts) == 3 and parts[1] in ("y", "n") else None
    if client is None or appt_id is None:
        await answer(query, _("This button is not valid."), alert=True)
        return
    try:
        appt = await d.visits.answer(appt_id, client.id, accept=parts[1] == "y")
    except NotAllowed:
        log.warning("refused a proposal answer by someone else")
        await answer(query, _("This button is not valid."), alert=True)
        return
    except AlreadyDecided as exc:
        await answer(query, already(d.language(client), exc.status), alert=True)
        await edit_quietly(context.bot, query.message.chat.id, query.message.message_id, markup=None)
        if isinstance(exc, Lapsed):
            await notify.expire_due(context.bot, d)  # the staff hear now that the proposal lapsed
        return
    await answer(query)
    outcome = _("You accepted this visit.") if appt.status == Status.CONFIRMED else _("You declined this visit.")
    text = (query.message.text_html or "") + "\n\n<b>" + outcome + "</b>"
    await edit_quietly(context.bot, query.message.chat.id, query.message.message_id, text=text)
    await notify.proposal_answered(context.bot, d, appt)


async def after_contact(bot: Bot, d: Deps, client_id: int) -> None:
    """A bot user gave their contact details: link the practice's record of them, or ask the admins."""
    linking = await d.records.link(client_id)
    if linking.ambiguous:
        async with d.store.tx() as tx:
            client = await tx.get_client(client_id)
        assert client is not None
        await notify.ask_admins_to_link(bot, d, client, linking.ambiguous)
