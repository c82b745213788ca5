"""The specialist's side: the request with Approve / Decline, decline reasons, and what each party is told."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import Gettext, appointment_facts, channel_instructions, status_label, time_label, when
from bot.i18n import available, gettext_for
from scheduling.changes import movable
from scheduling.config import Practice, local
from scheduling.store import AppointmentRow, ClientRow


def decline_presets(_: Gettext) -> list[str]:
    """Short reasons a specialist can decline with in one tap."""
    return [
        _("This time is no longer available"),
        _("Please choose another specialist"),
        _("This service does not fit the request"),
    ]


def asks_for_another_specialist(reason: str | None) -> bool:
    """Whether a decline reason is the preset asking the client to choose another specialist.

    Specialists decline in their own language, so the preset is recognised in every language.
    """
    return reason is not None and any(reason == decline_presets(gettext_for(lang))[1] for lang in available())


@dataclass
class Message:
    text: str
    markup: InlineKeyboardMarkup | None = None


def _button(label: str, *parts: str | int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data="|".join(("s", *map(str, parts))))


def _client_lines(_: Gettext, appt: AppointmentRow, client: ClientRow) -> list[str]:
    """Who the client is and what they wrote, for the specialist."""
    name = escape(client.name or "")
    if client.telegram_id is not None:
        # A mention by user id: the specialist can open the client's profile and write directly.
        name = f'<a href="tg://user?id={client.telegram_id}">{name or escape(_("Client"))}</a>'
    lines = [
        _("Client: {name}").format(name=name),
        _("Phone: {phone}").format(phone=escape(client.phone or "")),
    ]
    if client.email:
        lines.append(_("E-mail: {email}").format(email=escape(client.email)))
    if appt.note:
        lines.append(_("Note: {note}").format(note=escape(appt.note)))
    return lines


def request_message(
    practice: Practice, appt: AppointmentRow, client: ClientRow, lang: str, replaces: AppointmentRow | None = None
) -> Message:
    """The request as the specialist sees it, with Approve and Decline while it is pending.

    A request to move names the visit it would move (`replaces`) and its present time.
    """
    _ = gettext_for(lang)
    if replaces is not None:
        lines = [_("Request #{id} to move appointment #{original}").format(id=appt.id, original=replaces.id)]
        old = when(lang, practice, replaces.location_id, replaces.start, with_zone=True)
        lines += [_("Now: {when}").format(when=old), ""]
    else:
        lines = [_("New appointment request #{id}").format(id=appt.id), ""]
    lines += appointment_facts(_, lang, practice, appt)
    if appt.group_id is not None:
        seats = practice.service_by_id[appt.service_id].seats
        lines.append(_("A seat in the group session (up to {seats} participants).").format(seats=seats))
    lines += _client_lines(_, appt, client)
    if appt.source:
        lines.append(_("Source: {source}").format(source=escape(appt.source)))
    lines += ["", _("Status: {status}").format(status=status_label(_, appt.status))]
    if appt.status != "requested":
        return Message("\n".join(lines))
    markup = InlineKeyboardMarkup([[_button(_("Approve"), "a", appt.id), _button(_("Decline"), "d", appt.id)]])
    return Message("\n".join(lines), markup)


def partner_booking_message(
    practice: Practice, appt: AppointmentRow, client: ClientRow, lang: str, *, refusable: bool
) -> Message:
    """A partner's booking as the specialist sees it, with Refuse while the partner's refusal window is open."""
    _ = gettext_for(lang)
    booking = appt.partner_booking
    assert booking is not None
    partner = practice.partner_by_id.get(booking.partner_id)
    name = partner.name if partner else booking.partner_id
    lines = [_("New booking #{id} from {partner}").format(id=appt.id, partner=escape(name))]
    if partner is not None:
        lines.append(f"<b>{escape(partner.label)}</b>")
    lines += ["", *appointment_facts(_, lang, practice, appt), *_client_lines(_, appt, client)]
    status = _("refused by you") if booking.refused_at else status_label(_, appt.status)
    lines += ["", _("Status: {status}").format(status=status)]
    if not refusable or appt.status != "confirmed":
        return Message("\n".join(lines))
    until = time_label(lang, practice, appt.location_id, booking.refusal_until)
    lines.append(_("It is confirmed. If you cannot take it, refuse it by {time}.").format(time=until))
    return Message("\n".join(lines), InlineKeyboardMarkup([[_button(_("Refuse"), "x", appt.id)]]))


def reasons_message(
    practice: Practice, appt: AppointmentRow, client: ClientRow, lang: str, replaces: AppointmentRow | None = None
) -> Message:
    """The request with the decline reasons to choose from."""
    _ = gettext_for(lang)
    base = request_message(practice, appt, client, lang, replaces).text
    rows = [[_button(r, "r", appt.id, i)] for i, r in enumerate(decline_presets(_))]
    rows.append([_button(_("Type a reason"), "t", appt.id)])
    rows.append([_button(_("« Back"), "b", appt.id)])
    return Message(base + "\n\n" + _("Why are you declining?"), InlineKeyboardMarkup(rows))


def type_reason_prompt(lang: str) -> str:
    _ = gettext_for(lang)
    return _("Please type the reason for declining; the client will see it.")


def _letter(
    _: Gettext, lang: str, practice: Practice, appt: AppointmentRow, heading: str, *after: str, how: bool = False
) -> str:
    """A message to the client: a heading, the appointment's facts, what to expect (`how`), then paragraphs."""
    lines = [heading, "", *appointment_facts(_, lang, practice, appt)]
    if how:
        lines.append(channel_instructions(_, lang, practice, appt))
    for paragraph in after:
        if paragraph:
            lines += ["", paragraph]
    return "\n".join(lines)


def _instructions(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    """The service's instructions for this visit's channel, in italics."""
    text = practice.service_by_id[appt.service_id].instructions_for(appt.channel)
    return f"<i>{escape(local(text, lang))}</i>" if text else ""


def confirmed_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    policy = escape(local(practice.specialist_by_id[appt.specialist_id].cancellation.text, lang))
    heading, footer = _("Your appointment is confirmed."), _("The attached file adds the appointment to your calendar.")
    return _letter(_, lang, practice, appt, heading, _instructions(practice, appt, lang), policy, footer, how=True)


def move_approved_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    """The specialist approved the client's request to move: the visit's new facts."""
    _ = gettext_for(lang)
    heading = _("Your appointment has been moved as you asked.")
    footer = _("The attached file updates the appointment in your calendar.")
    return _letter(_, lang, practice, appt, heading, _instructions(practice, appt, lang), footer, how=True)


def move_refused_for_client(
    practice: Practice, move: AppointmentRow, original: AppointmentRow, lang: str, *, expired: bool
) -> str:
    """A request to move was declined or lapsed: the visit stands at its old time."""
    _ = gettext_for(lang)
    if expired:
        heading = _("The specialist did not answer your request to move in time, so it has lapsed.")
    else:
        heading = _("Sorry, the specialist could not move your appointment.")
    reason = _("Reason: {reason}").format(reason=escape(move.decline_reason)) if move.decline_reason else ""
    stays = _("Your appointment stays as it was:")
    lines = [heading, *([reason] if reason else []), "", stays, *appointment_facts(_, lang, practice, original)]
    return "\n".join(lines)


def reminder_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> Message:
    """The reminder, with Move and Cancel (the same buttons as in /my)."""
    _ = gettext_for(lang)
    heading, footer = _("A reminder of your appointment:"), _("Send /my to see or cancel your appointments.")
    text = _letter(_, lang, practice, appt, heading, _instructions(practice, appt, lang), footer, how=True)
    buttons = [InlineKeyboardButton(_("Cancel"), callback_data=f"m|c|{appt.id}")]
    if movable(appt):
        buttons.insert(0, InlineKeyboardButton(_("Move"), callback_data=f"m|mv|{appt.id}"))
    return Message(text, InlineKeyboardMarkup([buttons]))


def moved_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    heading, footer = (
        _("The specialist moved your appointment to a new time:"),
        _("Send /my to see or cancel your appointments."),
    )
    return _letter(_, lang, practice, appt, heading, footer)


def cancellation_confirmed(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    """The client's own cancellation, for the e-mail that carries the calendar file removing it."""
    _ = gettext_for(lang)
    paragraphs = [_("It was a late cancellation: the practice may charge for it.")] if appt.cancelled_late else []
    return _letter(_, lang, practice, appt, _("Your appointment is cancelled."), *paragraphs)


def send_video_link(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    """Remind the specialist that a video visit has no link configured: they send one themselves."""
    _ = gettext_for(lang)
    heading = _("No video link is set up for this video visit: please send the client a link before it.")
    return _letter(_, lang, practice, appt, heading)


def cancelled_by_specialist(practice: Practice, appt: AppointmentRow, lang: str) -> Message:
    _ = gettext_for(lang)
    text = _letter(_, lang, practice, appt, _("Sorry, the specialist had to cancel your appointment."))
    return Message(text, _again(_, appt))


def declined_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> Message:
    _ = gettext_for(lang)
    reason = _("Reason: {reason}").format(reason=escape(appt.decline_reason)) if appt.decline_reason else ""
    text = _letter(_, lang, practice, appt, _("Sorry, your request could not be accepted."), reason)
    return Message(text, _again(_, appt))


def expired_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> Message:
    _ = gettext_for(lang)
    heading = _("The specialist did not answer your request in time, so it has lapsed.")
    return Message(_letter(_, lang, practice, appt, heading), _again(_, appt))


def _again(_: Gettext, appt: AppointmentRow) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(_("Choose another time"), callback_data=f"b|again|{appt.id}")]])


def lapsed(lang: str) -> str:
    """The answer to Approve once the visit's time has begun (an alert: at most 200 characters)."""
    _ = gettext_for(lang)
    return _(
        "Too late: the visit's time has begun, so the request has lapsed and nothing was confirmed. The client is told."
    )


def already(lang: str, status: str) -> str:
    """The answer to a button of an appointment that is no longer pending."""
    _ = gettext_for(lang)
    return _("Nothing changed: this appointment is already {status}.").format(status=status_label(_, status))
