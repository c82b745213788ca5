"""The client's own appointments: the list, moving one, and cancelling one (late, if need be)."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import contact_the_practice, status_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice, local
from scheduling.model import Status
from scheduling.store import AppointmentRow


def _button(label: str, verb: str, appt_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=f"m|{verb}|{appt_id}")


def _service(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    return escape(local(practice.service_by_id[appt.service_id].name, lang))


def listing(practice: Practice, appts: list[AppointmentRow], moves: dict[int, AppointmentRow], lang: str) -> Message:
    """Upcoming requests and appointments with their buttons; a pending move is shown under its visit."""
    _ = gettext_for(lang)
    if not appts:
        return Message(_("You have no upcoming appointments. Send /book to book one."))
    lines, rows = [_("Your upcoming appointments:")], []
    for i, appt in enumerate(appts, 1):
        spec = practice.specialist_by_id[appt.specialist_id].name
        moment = when(lang, practice, appt.location_id, appt.start)
        status = status_label(_, appt.status)
        lines.append(f"{i}. {escape(moment)}: {_service(practice, appt, lang)}, {escape(spec)} ({status})")
        row = []
        move = moves.get(appt.id)
        if move is not None:
            to = when(lang, practice, move.location_id, move.start)
            lines.append("   " + _("Move to {when} requested; waiting for the specialist.").format(when=escape(to)))
            row.append(_button(_("Keep #{number} as is").format(number=i), "w", move.id))
        elif appt.status == Status.CONFIRMED:
            row.append(_button(_("Move #{number}").format(number=i), "mv", appt.id))
        row.append(_button(_("Cancel #{number}").format(number=i), "c", appt.id))
        rows.append(row)
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))


def _policy(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    return escape(local(practice.specialist_by_id[appt.specialist_id].cancellation.text, lang))


def confirm_cancel(practice: Practice, appt: AppointmentRow, lang: str, free: bool) -> Message:
    """Ask before cancelling, showing the specialist's policy; after its limit, say the practice may charge."""
    _ = gettext_for(lang)
    service = _service(practice, appt, lang)
    moment = when(lang, practice, appt.location_id, appt.start)
    lines = [_("Cancel {service} on {when}?").format(service=service, when=moment)]
    policy = _policy(practice, appt, lang)
    if policy:
        lines.append(policy)
    if free:
        rows = [[_button(_("Yes, cancel it"), "y", appt.id), _button(_("No, keep it"), "n", appt.id)]]
        return Message("\n\n".join(lines), InlineKeyboardMarkup(rows))
    lines.append(_("This is a late cancellation: the practice may charge for it."))
    lines.append(contact_the_practice(_, lang, practice))
    rows = [[_button(_("Cancel anyway"), "l", appt.id)], [_button(_("No, keep it"), "n", appt.id)]]
    return Message("\n\n".join(lines), InlineKeyboardMarkup(rows))


def move_closed(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    """After the deadline a visit cannot be moved here: the policy and how to reach the practice."""
    _ = gettext_for(lang)
    lines = [_("It is too late to move this appointment here.")]
    policy = _policy(practice, appt, lang)
    if policy:
        lines.append(policy)
    lines.append(contact_the_practice(_, lang, practice))
    return "\n\n".join(lines)


def cancelled_for_client(lang: str, late: bool) -> str:
    _ = gettext_for(lang)
    text = _("The appointment is cancelled. Send /book to book another time.")
    if late:
        text = _("It was a late cancellation: the practice may charge for it.") + "\n" + text
    return text


def move_withdrawn(lang: str) -> str:
    _ = gettext_for(lang)
    return _("Your request to move is withdrawn; the appointment stays as it was.")


def cancelled_for_specialist(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    service = _service(practice, appt, lang)
    moment = when(lang, practice, appt.location_id, appt.start)
    if appt.cancelled_late:
        return _(
            "The client cancelled {service} on {when} late, after your free-cancellation limit; the time is free again."
        ).format(service=service, when=moment)
    return _("The client cancelled {service} on {when}; the time is free again.").format(service=service, when=moment)
