"""Messages the bot sends on its own: requests to specialists, and outcomes to clients."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import escape

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError

from bot.calendar_text import client_event_for, client_series_cancel_for, client_series_event_for
from bot.deps import Deps
from bot.dialogs import alerts
from bot.dialogs import messages as message_texts
from bot.dialogs import privacy as privacy_texts
from bot.dialogs import series as series_texts
from bot.dialogs import specialist as texts
from bot.dialogs import waitlist as waitlist_texts
from bot.dialogs import workspace as work_texts
from bot.dialogs.mine import cancelled_for_specialist
from bot.dialogs.render import visit_link
from bot.dialogs.specialist import Message
from bot.handlers.common import edit_quietly
from bot.i18n import gettext_for
from bot.mail import plain
from caldav_bridge.ical import ics_bytes
from scheduling.calendar_sync import CalendarChange, Incident
from scheduling.config import local
from scheduling.db import MessageRow
from scheduling.messages import Messages
from scheduling.model import Channel, Status
from scheduling.privacy import Erasure, forget_old_drafts
from scheduling.recurrence import Scope
from scheduling.series import ChangedVisit, SeriesChange
from scheduling.staff_changes import Move
from scheduling.store import AppointmentRow, ClientRow
from scheduling.store_series import SeriesRow
from scheduling.visits import STAFF_SOURCE

log = logging.getLogger(__name__)


StaffText = Callable[[str], Message | str]


async def to_each_staff(bot: Bot, d: Deps, chat_ids: list[int], compose: StaffText) -> None:
    """Send each staff chat `compose(lang)` in that person's own language (Deps.staff_language).

    The one way the bot writes to staff on its own: the specialist and the admins may each read a
    different language, so the text is built once per recipient, never once for all of them.
    """
    for chat_id in chat_ids:
        built = compose(await d.staff_language(chat_id))
        msg = built if isinstance(built, Message) else Message(built)
        try:
            await bot.send_message(chat_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup)
        except TelegramError as exc:
            log.warning("could not reach staff chat %s: %s", chat_id, exc.message)


async def client_of(d: Deps, appt: AppointmentRow) -> ClientRow:
    async with d.store.tx() as tx:
        client = await tx.get_client(appt.client_id)
    assert client is not None
    return client


async def replaced(d: Deps, appt: AppointmentRow) -> AppointmentRow | None:
    """The appointment a request to move would move (None for an ordinary request)."""
    if appt.replaces_id is None:
        return None
    async with d.store.tx() as tx:
        return await tx.get_appointment(appt.replaces_id)


async def _series_of(d: Deps, appt: AppointmentRow) -> tuple[SeriesRow, list[AppointmentRow]] | None:
    if appt.series_id is None:
        return None
    async with d.store.tx() as tx:
        series = await tx.get_series(appt.series_id)
        rows = await tx.series_rows(appt.series_id)
    return (series, rows) if series is not None else None


async def _request_message(
    d: Deps, appt: AppointmentRow, chat_id: int, client: ClientRow | None = None
) -> texts.Message:
    """The request as one staff member sees it; a series' request lists every date, decided as a whole."""
    client = client or await client_of(d, appt)
    msg = await _staff_message(d, appt, client, chat_id)
    found = await _series_of(d, appt)
    if found is not None:
        msg = series_texts.with_dates(msg, d.practice, *found, await d.staff_language(chat_id))
    return msg


async def ask_specialist(bot: Bot, d: Deps, appt: AppointmentRow, client: ClientRow | None = None) -> None:
    """Send the request with Approve / Decline; remembered so later changes edit the same message.

    `client`: the appointment's client as the transaction that booked it read it (else it is read here).
    """
    found = await _series_of(d, appt)
    for chat_id in specialist_chats(d, appt.specialist_id):
        msg = await _request_message(d, appt, chat_id, client)
        try:
            sent = await bot.send_message(chat_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup)
        except Forbidden:
            log.warning("specialist %s has not started the bot; request %s waits", appt.specialist_id, appt.id)
            continue
        async with d.store.tx() as tx:
            # Every visit of a series points at the one request message, so none is asked again.
            for row in found[1] if found is not None else [appt]:
                await tx.set_request_message(row.id, chat_id, sent.message_id)
        return


async def _staff_message(d: Deps, appt: AppointmentRow, client: ClientRow, chat_id: int) -> texts.Message:
    """The specialist's message about an appointment (a partner's booking, or a client's request) for one chat."""
    lang = await d.staff_language(chat_id)
    if appt.partner_booking is not None:
        refusable = d.partners.may_refuse(appt.partner_booking)
        return texts.partner_booking_message(d.practice, appt, client, lang, refusable=refusable)
    return texts.request_message(d.practice, appt, client, lang, await replaced(d, appt))


async def refresh_request(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """Show the request's new status in the specialist's message, without buttons once decided."""
    if appt.request_chat_id is None or appt.request_message_id is None:
        return
    msg = await _request_message(d, appt, appt.request_chat_id)
    await edit_quietly(bot, appt.request_chat_id, appt.request_message_id, text=msg.text, markup=msg.markup)


async def tell_partner_booking(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """A partner booked: the specialist learns of it, with Refuse for the partner's refusal window."""
    client = await client_of(d, appt)
    for chat_id in specialist_chats(d, appt.specialist_id):
        msg = await _staff_message(d, appt, client, chat_id)
        try:
            sent = await bot.send_message(chat_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup)
        except TelegramError as exc:
            log.warning("could not tell specialist %s of partner booking %s: %s", appt.specialist_id, appt.id, exc)
            continue
        async with d.store.tx() as tx:
            await tx.set_request_message(appt.id, chat_id, sent.message_id)
        return


async def _to_client(bot: Bot, client: ClientRow, text: str, **kwargs: object) -> None:
    if client.telegram_id is None:
        return
    try:
        await bot.send_message(client.telegram_id, text, parse_mode=ParseMode.HTML, **kwargs)  # type: ignore[arg-type]
    except TelegramError as exc:
        log.warning("could not tell client %s: %s", client.id, exc.message)


def _subject(d: Deps, lang: str, kind: str) -> str:
    _ = gettext_for(lang)
    practice = local(d.practice.practice.name, lang)
    return {
        "confirmed": _("{practice}: your appointment is confirmed"),
        "changed": _("{practice}: your appointment has changed"),
        "cancelled": _("{practice}: your appointment is cancelled"),
    }[kind].format(practice=practice)


async def _tell(
    bot: Bot,
    d: Deps,
    client: ClientRow,
    appt: AppointmentRow,
    text: str,
    *,
    kind: str | None = None,
    markup: InlineKeyboardMarkup | None = None,
    shown: bool = False,
) -> None:
    """A message about an appointment in Telegram and, with `kind`, its .ics and an e-mail to the client.

    kind "confirmed" or "changed" attaches the event; "cancelled" attaches METHOD:CANCEL, so the
    copy the client imported disappears from their calendar. `shown`: the text is already on the
    client's screen (they did it themselves), so Telegram gets only the file. The message with
    buttons (e.g. "Choose another time") comes last, where the client looks.
    """
    if kind is None:
        await _to_client(bot, client, text, reply_markup=markup)
        return
    lang = d.language(client)
    data = ics_bytes(client_event_for(d.practice, appt, lang), cancel=kind == "cancelled")
    if not shown and markup is None:
        await _to_client(bot, client, text)
    if client.telegram_id is not None:
        try:
            await bot.send_document(client.telegram_id, data, filename="appointment.ics")
        except TelegramError as exc:
            log.warning("could not send the .ics to client %s: %s", client.id, exc.message)
    if not shown and markup is not None:
        await _to_client(bot, client, text, reply_markup=markup)
    if d.mailer is not None and client.email:
        await d.mailer.send_later(client.id, _subject(d, lang, kind), plain(text), data)


async def confirmed(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """Tell the client, with an .ics file for their own calendar (a move: the visit's new time)."""
    client = await client_of(d, appt)
    lang = d.language(client)
    original = await replaced(d, appt)
    if original is None:
        await d.waitlist.follow_asap(appt)  # flagged ASAP before it was confirmed: it waits for an earlier time now
    if appt.status == Status.MOVED and original is not None:
        text = texts.move_approved_for_client(d.practice, original, lang)
        moved_in = await _series_of(d, original)
        if moved_in is not None:
            # One visit of a series moved: the client's calendar has the series, so they get its file.
            await _send_series_file(bot, d, client, [moved_in[0]], text, shown=False)
        else:
            await _tell(bot, d, client, original, text, kind="changed")
        appt = original
        await offer_freed_time(bot, d)  # the visit's old time
    elif (found := await _series_of(d, appt)) is not None:
        series, rows = found
        text = texts.confirmed_for_client(d.practice, appt, lang)
        text += "\n\n" + "\n".join(series_texts.visit_dates(d.practice, series, rows, lang))
        await _to_client(bot, client, text)
        spec = client_series_event_for(d.practice, series, rows, lang)
        if spec is not None and client.telegram_id is not None:
            try:
                await bot.send_document(client.telegram_id, ics_bytes(spec), filename="appointments.ics")
            except TelegramError as exc:
                log.warning("could not send the .ics to client %s: %s", client.id, exc.message)
        if spec is not None and d.mailer is not None and client.email:
            await d.mailer.send_later(client.id, _subject(d, lang, "confirmed"), plain(text), ics_bytes(spec))
    else:
        await _tell(bot, d, client, appt, texts.confirmed_for_client(d.practice, appt, lang), kind="confirmed")
    if appt.channel == Channel.VIDEO and not visit_link(d.practice, appt):
        await _to_deciders(bot, d, appt, lambda lang: texts.send_video_link(d.practice, appt, lang))


async def _to_deciders(bot: Bot, d: Deps, appt: AppointmentRow, compose: StaffText) -> None:
    """A message to whoever decides for the appointment's specialist, each in their own language."""
    await to_each_staff(bot, d, specialist_chats(d, appt.specialist_id), compose)


async def declined(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    client = await client_of(d, appt)
    lang = d.language(client)
    original = await replaced(d, appt)
    if original is not None:
        await _to_client(bot, client, texts.move_refused_for_client(d.practice, appt, original, lang, expired=False))
    elif (found := await _series_of(d, appt)) is not None:
        msg = series_texts.with_dates(texts.declined_for_client(d.practice, appt, lang), d.practice, *found, lang)
        await _to_client(bot, client, msg.text, reply_markup=msg.markup)
    else:
        msg = texts.declined_for_client(d.practice, appt, lang)
        await _tell(bot, d, client, appt, msg.text, kind="cancelled", markup=msg.markup)
    await offer_freed_time(bot, d, appt.specialist_id)


async def all_declined(bot: Bot, d: Deps, client: ClientRow, appts: list[AppointmentRow]) -> None:
    """An admin declined all of a client's requests: each request message closes, the client is told once."""
    refreshed: set[tuple[int | None, int | None]] = set()
    for appt in appts:
        # A series' visits share one request message.
        if (appt.request_chat_id, appt.request_message_id) not in refreshed:
            refreshed.add((appt.request_chat_id, appt.request_message_id))
            await refresh_request(bot, d, appt)
    await _to_client(bot, client, work_texts.all_declined_for_client(d.practice, appts, d.language(client)))
    for specialist_id in sorted({a.specialist_id for a in appts}):
        await offer_freed_time(bot, d, specialist_id)


async def expired(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """Both are told: the client may choose again (or keeps the visit a move was for), the buttons go away."""
    client = await client_of(d, appt)
    if appt.source == STAFF_SOURCE:
        await proposal_lapsed(bot, d, appt, client)
        return
    lang = d.language(client)
    original = await replaced(d, appt)
    if original is not None:
        await _to_client(bot, client, texts.move_refused_for_client(d.practice, appt, original, lang, expired=True))
    else:
        msg = texts.expired_for_client(d.practice, appt, lang)
        await _to_client(bot, client, msg.text, reply_markup=msg.markup)
    await refresh_request(bot, d, appt)
    await offer_freed_time(bot, d, appt.specialist_id)


async def cancelled(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """The client cancelled: the specialist is told and their request message updated; the client's copy goes."""
    await _to_deciders(bot, d, appt, lambda lang: cancelled_for_specialist(d.practice, appt, lang))
    await refresh_request(bot, d, appt)
    client = await client_of(d, appt)
    if appt.status == Status.CANCELLED and appt.replaces_id is None:
        text = texts.cancellation_confirmed(d.practice, appt, d.language(client))
        found = await _series_of(d, appt)
        if found is not None:
            # A series visit is in the client's calendar as part of the series: its file, as it now stands.
            await _send_series_file(bot, d, client, [found[0]], text, shown=True)
        else:
            await _tell(bot, d, client, appt, text, kind="cancelled", shown=True)
    await d.waitlist.visit_ended(appt.id)
    await offer_freed_time(bot, d, appt.specialist_id)


async def erased(bot: Bot, d: Deps, erasure: Erasure) -> None:
    """A client's data was erased: each specialist whose visit was cancelled is told (the client is not named)."""
    for appt in erasure.cancelled:
        await _to_deciders(
            bot, d, appt, lambda lang, appt=appt: privacy_texts.cancelled_for_specialist(d.practice, appt, lang)
        )
        await d.waitlist.visit_ended(appt.id)
    for appt in erasure.appointments:
        # The specialist's request messages showed the name and the note: they now show neither.
        await refresh_request(bot, d, appt)
    for specialist_id in dict.fromkeys(a.specialist_id for a in erasure.cancelled):
        await offer_freed_time(bot, d, specialist_id)


async def calendar_changed(bot: Bot, d: Deps, change: CalendarChange) -> None:
    """The specialist moved or removed the event in their calendar app: tell the client, update the request."""
    appt = change.appointment
    client = await client_of(d, appt)
    lang = d.language(client)
    if not change.removed:
        kind = "changed" if appt.status == Status.CONFIRMED else None
        await _tell(bot, d, client, appt, texts.moved_for_client(d.practice, appt, lang), kind=kind)
    elif appt.status == Status.DECLINED:
        await declined(bot, d, appt)
    else:
        msg = texts.cancelled_by_specialist(d.practice, appt, lang)
        await _tell(bot, d, client, appt, msg.text, kind="cancelled", markup=msg.markup)
        await d.waitlist.visit_ended(appt.id)
    await refresh_request(bot, d, appt)
    await offer_freed_time(bot, d, appt.specialist_id)


async def calendar_changes(bot: Bot, d: Deps, changes: list[CalendarChange]) -> None:
    """Changes carried back from the calendar (or accepted by staff after an incident): single visits and seats one
    by one, each series in one message."""
    by_series: dict[int, list[CalendarChange]] = {}
    for change in changes:
        if change.appointment.series_id is None:
            await calendar_changed(bot, d, change)
        else:
            by_series.setdefault(change.appointment.series_id, []).append(change)
    for series_id, found in by_series.items():
        async with d.store.tx() as tx:
            series = await tx.get_series(series_id)
        assert series is not None
        visits = [ChangedVisit(c.appointment, c.old_start, removed=c.removed) for c in found]
        await series_changed(bot, d, SeriesChange([series], visits, Scope.ALL, by_calendar=True))
        await offer_freed_time(bot, d, series.specialist_id)


async def series_by_staff(bot: Bot, d: Deps, change: SeriesChange, *, tell: bool, reason: str | None) -> None:
    """Staff moved or cancelled visits of a series: the client is told (when asked for) in one message."""
    if tell:
        await series_changed(bot, d, change, reason=reason)
    if any(v.removed for v in change.visits):
        await offer_freed_time(bot, d, change.series[0].specialist_id)


async def _series_file(d: Deps, series_list: list[SeriesRow], lang: str) -> tuple[bytes | None, bool]:
    """The client's .ics of these series as they now stand, or (nothing of them left) a cancellation of the
    imported copy; and whether it is that cancellation."""
    specs, gone = [], []
    async with d.store.tx() as tx:
        for series in series_list:
            rows = await tx.series_rows(series.id)
            spec = client_series_event_for(d.practice, series, rows, lang)
            if spec is not None:
                specs.append(spec)
            elif rows:
                gone.append(client_series_cancel_for(d.practice, series, rows, lang))
    if specs:
        return ics_bytes(*specs), False
    return (ics_bytes(*gone, cancel=True), True) if gone else (None, False)


async def _send_series_file(
    bot: Bot, d: Deps, client: ClientRow, series_list: list[SeriesRow], text: str, *, shown: bool
) -> None:
    """One .ics of the series' new state in Telegram (after `text`, unless the client has it on screen already)
    and, with `text`, by e-mail."""
    lang = d.language(client)
    data, cancelled = await _series_file(d, series_list, lang)
    if not shown:
        await _to_client(bot, client, text)
    if data is None:
        return
    if client.telegram_id is not None:
        try:
            await bot.send_document(client.telegram_id, data, filename="appointments.ics")
        except TelegramError as exc:
            log.warning("could not send the .ics to client %s: %s", client.id, exc.message)
    if d.mailer is not None and client.email:
        await d.mailer.send_later(
            client.id, _subject(d, lang, "cancelled" if cancelled else "changed"), plain(text), data
        )


async def series_changed(bot: Bot, d: Deps, change: SeriesChange, *, reason: str | None = None) -> None:
    """One message for one change to a series, with one .ics of its new state."""
    client = await client_of(d, change.visits[0].appointment)
    text = series_texts.change_for_client(d.practice, change, d.language(client), reason)
    await _send_series_file(bot, d, client, change.series, text, shown=False)


def _staff(d: Deps, specialist_id: str) -> list[int]:
    """The specialist and every admin: who hears about trouble with a calendar."""
    spec = d.practice.specialist_by_id[specialist_id]
    return list(dict.fromkeys([*([spec.telegram_id] if spec.telegram_id else []), *d.practice.practice.admins]))


async def _to_staff(bot: Bot, d: Deps, specialist_id: str, compose: StaffText) -> None:
    """Trouble with a specialist's calendar: the specialist and every admin, each in their own language."""
    await to_each_staff(bot, d, _staff(d, specialist_id), compose)


async def calendar_incident(bot: Bot, d: Deps, incident: Incident) -> None:
    """Many events vanished at once: the specialist and admins choose between restoring and cancelling."""
    await _to_staff(bot, d, incident.specialist_id, lambda lang: alerts.incident_message(d.practice, incident, lang))


async def deliver_message(bot: Bot, d: Deps, row: MessageRow) -> bool:
    """Deliver a message between client and specialist; it is forgotten once delivered, retried otherwise."""
    async with d.store.tx() as tx:
        appt = await tx.get_appointment(row.appointment_id)
    messages = Messages(d.booking)
    if appt is None:
        await messages.delivered(row.id)
        return False
    if row.to_client:
        chats = [appt.client.telegram_id] if appt.client.telegram_id is not None else []
    else:
        chats = specialist_chats(d, appt.specialist_id)
    for chat_id in chats:
        if row.to_client:
            msg = message_texts.to_client(d.practice, appt, row, d.language(appt.client))
        else:
            msg = message_texts.to_specialist(d.practice, appt, row, await d.staff_language(chat_id))
        try:
            await bot.send_message(chat_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup)
        except TelegramError as exc:
            log.warning("message %s not delivered yet: %s", row.id, exc.message)
            continue
        await messages.delivered(row.id)
        return True
    if not await messages.failed(row.id):
        log.warning("message %s given up after repeated failures", row.id)
    return False


async def offer_freed_time(bot: Bot, d: Deps, specialist_id: str | None = None) -> None:
    """Time may have freed up: offer it to the clients waiting for it, and send the offers."""
    await d.waitlist.time_freed(specialist_id)
    await send_offers(bot, d)


async def send_offers(bot: Bot, d: Deps) -> None:
    """Send each offer of freed time not sent yet; remembered so a lapse can edit it."""
    for entry in await d.waitlist.unsent_offers():
        async with d.store.tx() as tx:
            client = await tx.get_client(entry.client_id)
        if client is None or client.telegram_id is None:
            continue
        msg = waitlist_texts.offer(d.practice, entry, d.language(client))
        try:
            sent = await bot.send_message(
                client.telegram_id, msg.text, parse_mode=ParseMode.HTML, reply_markup=msg.markup
            )
        except TelegramError as exc:
            log.warning("could not send an offer to client %s: %s", client.id, exc.message)
            continue
        await d.waitlist.offer_sent(entry.id, client.telegram_id, sent.message_id)


async def lapse_offers(bot: Bot, d: Deps) -> None:
    """Offers nobody took in time: say so, and offer the time to the next client waiting."""
    for entry in await d.waitlist.lapse_due():
        if entry.offer_chat_id is not None and entry.offer_message_id is not None:
            async with d.store.tx() as tx:
                client = await tx.get_client(entry.client_id)
            lang = d.language(client)
            await edit_quietly(bot, entry.offer_chat_id, entry.offer_message_id, text=waitlist_texts.lapsed(lang))
        await d.waitlist.time_freed(entry.offer_specialist)
    await send_offers(bot, d)


async def expire_due(bot: Bot, d: Deps) -> None:
    """Expire the requests (and series) nobody decided in time; each client is told once, whichever process runs it."""
    for appt in await d.booking.expire_due():
        await expired(bot, d, appt)
    for _series, lapsed in await d.series.expire_due():
        await expired(bot, d, lapsed[0])


async def sweep(bot: Bot, d: Deps) -> None:
    """Expire requests, carry calendar edits back, remind clients, re-send requests that did not go out."""
    await lapse_offers(bot, d)
    await expire_due(bot, d)
    for spec in d.practice.specialists:
        found = await d.booking.sync.reconcile(spec.id)
        # A client's weekly seats are a series: told in one message with the course's file, as series are.
        await calendar_changes(bot, d, found.changes)
        in_series = await d.series.reconcile(spec.id)
        for series_change in in_series.changes:
            await series_changed(bot, d, series_change)
        for incident in (found.incident, in_series.incident):
            if incident is not None:
                await calendar_incident(bot, d, incident)
    for spec_id, error in (await d.booking.sync.failing_writes()).items():
        await _to_staff(
            bot, d, spec_id, lambda lang, s=spec_id, e=error: alerts.writes_failing_message(d.practice, s, e, lang)
        )
    for appt in await d.booking.claim_reminders():
        client = await client_of(d, appt)
        msg = texts.reminder_for_client(d.practice, appt, d.language(client))
        await _to_client(bot, client, msg.text, reply_markup=msg.markup)
        if appt.channel == Channel.VIDEO and not visit_link(d.practice, appt):
            await _to_deciders(bot, d, appt, lambda lang, a=appt: texts.send_video_link(d.practice, a, lang))
    if d.mailer is not None:
        await d.mailer.flush()
    now = d.booking.clock()
    async with d.store.tx() as tx:
        unsent = await tx.unsent_requests(now - timedelta(seconds=30))
    asked: set[int] = set()
    for appt in unsent:
        if appt.series_id is not None:
            if appt.series_id in asked:
                continue  # one message for the whole series
            asked.add(appt.series_id)
        await ask_specialist(bot, d, appt)
    for row in await Messages(d.booking).undelivered(now - timedelta(seconds=30)):
        await deliver_message(bot, d, row)
    # Catches freed time no event announced (e.g. an event deleted in the calendar app).
    await offer_freed_time(bot, d)
    if d.practice.partners:
        await _partner_notices(bot, d)
    await forget_old_drafts(d.store, datetime.now(UTC))
    for erasure in await d.privacy.retention_sweep():
        await erased(bot, d, erasure)


async def _partner_notices(bot: Bot, d: Deps) -> None:
    """New partner bookings to tell of, Refuse buttons whose window closed, the partners' cancellations."""
    for appt in await d.partners.claim_notices():
        await tell_partner_booking(bot, d, appt)
    for appt in await d.partners.claim_closed_refusals():
        await refresh_request(bot, d, appt)
    for appt in await d.partners.claim_partner_cancellations():
        await cancelled(bot, d, appt)


async def calendar_signed_out(bot: Bot, d: Deps, specialist_id: str, provider: str) -> None:
    """Tell the specialist and the admins, once, that a calendar sign-in stopped working."""
    spec = d.practice.specialist_by_id[specialist_id]

    def compose(lang: str) -> str:
        _ = gettext_for(lang)
        return _(
            "The bot can no longer use {name}'s {provider} calendar: access was withdrawn. Free times stay closed "
            "and bookings wait until {name} sends /connect again."
        ).format(name=escape(spec.name), provider=provider.capitalize())

    await _to_staff(bot, d, specialist_id, compose)


# --- the specialist's workspace ---------------------------------------------------------------------


def specialist_chats(d: Deps, specialist_id: str) -> list[int]:
    """Where a specialist is written to: their own chat, or the admins' when they have no Telegram id."""
    spec = d.practice.specialist_by_id[specialist_id]
    return [spec.telegram_id] if spec.telegram_id else list(d.practice.practice.admins)


async def proposed(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """A visit the practice booked: the client accepts or declines it."""
    client = await client_of(d, appt)
    msg = work_texts.proposal_for_client(d.practice, appt, d.language(client))
    await _to_client(bot, client, msg.text, reply_markup=msg.markup)


async def proposal_answered(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """The client accepted (they get the .ics) or declined; the specialist is told either way."""
    client = await client_of(d, appt)
    if appt.status == Status.CONFIRMED:
        await confirmed(bot, d, appt)
    await to_each_staff(
        bot,
        d,
        specialist_chats(d, appt.specialist_id),
        lambda lang: work_texts.proposal_answered(d.practice, appt, client, lang),
    )


async def proposal_lapsed(bot: Bot, d: Deps, appt: AppointmentRow, client: ClientRow) -> None:
    await _to_client(bot, client, work_texts.proposal_lapsed_for_client(d.practice, appt, d.language(client)))
    await to_each_staff(
        bot,
        d,
        specialist_chats(d, appt.specialist_id),
        lambda lang: work_texts.proposal_lapsed(d.practice, appt, client, lang),
    )


async def moved_by_staff(bot: Bot, d: Deps, move: Move) -> None:
    """Staff moved a visit: the client is told (when asked for) with the reason and a new .ics."""
    appt = move.appointment
    await refresh_request(bot, d, appt)
    if not move.tell:
        return
    client = await client_of(d, appt)
    found = await _series_of(d, appt)
    if found is not None:
        # One visit of a series: the client's calendar has the series, so they get its file as it now stands.
        change = SeriesChange([found[0]], [ChangedVisit(appt, move.old_start, removed=False)], Scope.THIS)
        await series_changed(bot, d, change, reason=move.reason)
        return
    text = work_texts.moved_with_reason(d.practice, appt, d.language(client), move.reason)
    await _tell(bot, d, client, appt, text, kind="changed" if appt.status == Status.CONFIRMED else None)
    if appt.status == Status.PROPOSED:
        await proposed(bot, d, appt)


async def cancelled_by_staff(bot: Bot, d: Deps, appt: AppointmentRow, *, tell: bool, reason: str | None) -> None:
    """Staff cancelled: the client is told (when asked for) and offered other times with one button."""
    await refresh_request(bot, d, appt)
    if not tell:
        return
    client = await client_of(d, appt)
    msg = work_texts.cancelled_with_reason(d.practice, appt, d.language(client), reason)
    await _tell(bot, d, client, appt, msg.text, kind="cancelled", markup=msg.markup)


async def send_ics_again(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """The appointment's file once more (Telegram gets only the file; an e-mail carries the confirmation)."""
    client = await client_of(d, appt)
    text = texts.confirmed_for_client(d.practice, appt, d.language(client))
    found = await _series_of(d, appt)
    if found is not None:
        # A series visit is in the client's calendar as part of the series: the series' file, as it stands.
        await _send_series_file(bot, d, client, [found[0]], text, shown=True)
        return
    await _tell(bot, d, client, appt, text, kind="confirmed", shown=True)


async def handover_offered(bot: Bot, d: Deps, appt: AppointmentRow) -> None:
    """The colleague is asked to take the appointment over."""
    assert appt.reassign_to is not None
    client = await client_of(d, appt)
    await to_each_staff(
        bot,
        d,
        specialist_chats(d, appt.reassign_to),
        lambda lang: work_texts.handover_offer(d.practice, appt, client, lang),
    )


async def handover_decided(bot: Bot, d: Deps, appt: AppointmentRow, *, owner: str, colleague: str) -> None:
    """The one who asked learns the answer; on a takeover the client learns who will see them."""
    accepted = appt.specialist_id == colleague
    await to_each_staff(
        bot,
        d,
        specialist_chats(d, owner),
        lambda lang: work_texts.handover_outcome(d.practice, appt, lang, accepted=accepted, colleague=colleague),
    )
    if accepted:
        client = await client_of(d, appt)
        text = work_texts.reassigned_for_client(d.practice, appt, d.language(client))
        await _tell(bot, d, client, appt, text, kind="changed")


async def ask_admins_to_link(bot: Bot, d: Deps, client: ClientRow, records: list[ClientRow]) -> None:
    """Several records match a new bot user: the admins decide, nothing is linked meanwhile."""
    await to_each_staff(
        bot, d, list(d.practice.practice.admins), lambda lang: work_texts.link_question(client, records, lang)
    )
