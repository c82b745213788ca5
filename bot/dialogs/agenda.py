"""The specialist's agenda: the coming week's requests and appointments, and marking who came."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import channel_label, status_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice
from scheduling.model import Status
from scheduling.store import AppointmentRow


def agenda(practice: Practice, appts: list[AppointmentRow], lang: str, *, started: set[int]) -> Message:
    """One line per appointment; those that have begun and are confirmed get Came / Did not come."""
    _ = gettext_for(lang)
    if not appts:
        return Message(_("No appointments in the coming week."))
    lines, rows = [_("Your agenda:")], []
    for i, appt in enumerate(appts, 1):
        client = appt.client
        who = ", ".join(escape(x) for x in (client.name, client.phone) if x)
        service = escape(practice.service_by_id[appt.service_id].name)
        partner = practice.partner_by_id.get(appt.partner_booking.partner_id) if appt.partner_booking else None
        if partner is not None:
            service += f" ({escape(partner.label)})"
        moment = escape(when(lang, practice, appt.location_id, appt.start))
        extra = (
            f" · {escape(practice.specialist_by_id[appt.specialist_id].name)}" if len(practice.specialists) > 1 else ""
        )
        how, status = channel_label(_, appt.channel), status_label(_, appt.status)
        mark = "↻ " if appt.series_id is not None else ""  # a visit of a recurring series
        lines.append(f"{i}. {mark}{moment} · {service} · {how} · {who}{extra} ({status})")
        if appt.id in started and appt.status == Status.CONFIRMED:
            rows.append(
                [
                    InlineKeyboardButton(_("#{number} came").format(number=i), callback_data=f"s|m|{appt.id}|1"),
                    InlineKeyboardButton(
                        _("#{number} did not come").format(number=i), callback_data=f"s|m|{appt.id}|0"
                    ),
                ]
            )
    return Message("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)
