"""Texts and buttons of messages between a client and a specialist (HTML parse mode)."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice, local
from scheduling.db import MessageRow
from scheduling.store import AppointmentRow


def write_button(label: str, appt_id: int, *, staff: bool) -> InlineKeyboardButton:
    """The button that opens a message about the appointment: `w|s|id` for staff, `w|c|id` for the client."""
    return InlineKeyboardButton(label, callback_data=f"w|{'s' if staff else 'c'}|{appt_id}")


def _about(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    service = escape(local(practice.service_by_id[appt.service_id].name, lang))
    return f"{service}, {escape(when(lang, practice, appt.location_id, appt.start))}"


def client_prompt(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    spec = escape(practice.specialist_by_id[appt.specialist_id].name)
    return _("Type your message to {specialist} about {appointment}. Send /cancel to stop.").format(
        specialist=spec, appointment=_about(practice, appt, lang)
    )


def staff_prompt(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    who = escape(appt.client.name or _("Client"))
    return _("Type your message to {client} about #{id} ({appointment}). Send /cancel to stop.").format(
        client=who, id=appt.id, appointment=_about(practice, appt, lang)
    )


def to_specialist(practice: Practice, appt: AppointmentRow, row: MessageRow, lang: str) -> Message:
    """A client's message as the specialist receives it: the appointment named, and Reply."""
    _ = gettext_for(lang)
    who = escape(appt.client.name or _("Client"))
    if row.relayed:
        return Message(f"<b>{who}:</b> {escape(row.text)}")
    heading = _("Message from {client} about #{id} ({appointment}):").format(
        client=who, id=appt.id, appointment=_about(practice, appt, lang)
    )
    markup = InlineKeyboardMarkup([[write_button(_("Reply"), appt.id, staff=True)]])
    return Message(f"{heading}\n\n{escape(row.text)}", markup)


def to_client(practice: Practice, appt: AppointmentRow, row: MessageRow, lang: str) -> Message:
    """A specialist's message as the client receives it, with Reply."""
    _ = gettext_for(lang)
    spec = escape(practice.specialist_by_id[appt.specialist_id].name)
    if row.relayed:
        return Message(f"<b>{spec}:</b> {escape(row.text)}")
    heading = _("Message from {specialist} about your appointment ({appointment}):").format(
        specialist=spec, appointment=_about(practice, appt, lang)
    )
    markup = InlineKeyboardMarkup([[write_button(_("Reply"), appt.id, staff=False)]])
    return Message(f"{heading}\n\n{escape(row.text)}", markup)


def sent(lang: str, *, cut: int | None) -> str:
    _ = gettext_for(lang)
    text = _("Your message has been sent.")
    if cut is not None:
        text = _("Your message was longer than {limit} characters; only its beginning was sent.").format(limit=cut)
    return text


def closed(lang: str) -> str:
    _ = gettext_for(lang)
    return _("Messages about this appointment are closed.")
