"""The client's own appointments: the list, and cancelling one within the specialist's policy."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import status_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice
from scheduling.store import AppointmentRow


def _button(label: str, verb: str, appt_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=f"m|{verb}|{appt_id}")


def listing(practice: Practice, appts: list[AppointmentRow], lang: str) -> Message:
    """Upcoming requests and appointments, each with a Cancel button."""
    _ = gettext_for(lang)
    if not appts:
        return Message(_("You have no upcoming appointments. Send /book to book one."))
    lines, rows = [_("Your upcoming appointments:")], []
    for i, appt in enumerate(appts, 1):
        service = practice.service_by_id[appt.service_id].name
        spec = practice.specialist_by_id[appt.specialist_id].name
        moment = when(lang, practice, appt.location_id, appt.start)
        status = status_label(_, appt.status)
        lines.append(f"{i}. {escape(moment)}: {escape(service)}, {escape(spec)} ({status})")
        rows.append([_button(_("Cancel #{number}").format(number=i), "c", appt.id)])
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))


def confirm_cancel(practice: Practice, appt: AppointmentRow, lang: str, free: bool) -> Message:
    """Ask before cancelling, showing the specialist's cancellation policy."""
    _ = gettext_for(lang)
    service = practice.service_by_id[appt.service_id].name
    policy = practice.specialist_by_id[appt.specialist_id].cancellation.text
    lines = [
        _("Cancel {service} on {when}?").format(
            service=escape(service), when=when(lang, practice, appt.location_id, appt.start)
        )
    ]
    if policy:
        lines.append(escape(policy))
    if not free:
        lines.append(_("Free cancellation is no longer possible; please contact the practice."))
        return Message("\n\n".join(lines))
    rows = [[_button(_("Yes, cancel it"), "y", appt.id), _button(_("No, keep it"), "n", appt.id)]]
    return Message("\n\n".join(lines), InlineKeyboardMarkup(rows))


def cancelled_for_client(lang: str) -> str:
    _ = gettext_for(lang)
    return _("The appointment is cancelled. Send /book to book another time.")


def cancelled_for_specialist(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    service = practice.service_by_id[appt.service_id].name
    return _("The client cancelled {service} on {when}; the time is free again.").format(
        service=escape(service), when=when(lang, practice, appt.location_id, appt.start)
    )
