"""The specialist's agenda: requests first, then the coming week; each line opens the appointment's card."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.card import button
from bot.dialogs.render import Gettext, channel_label, status_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice
from scheduling.model import PENDING_STATUSES, Status
from scheduling.store import AppointmentRow


def line(_: Gettext, lang: str, practice: Practice, number: int, appt: AppointmentRow) -> str:
    """One appointment in a list: when, what, how, who (and whose, when the practice has several specialists)."""
    client = appt.client
    who = ", ".join(escape(x) for x in (client.name, client.phone) if x)
    service = escape(practice.service_by_id[appt.service_id].name)
    partner = practice.partner_by_id.get(appt.partner_booking.partner_id) if appt.partner_booking else None
    if partner is not None:
        service += f" ({escape(partner.label)})"
    moment = escape(when(lang, practice, appt.location_id, appt.start))
    extra = f" · {escape(practice.specialist_by_id[appt.specialist_id].name)}" if len(practice.specialists) > 1 else ""
    how, status = channel_label(_, appt.channel), status_label(_, appt.status)
    # A visit of a recurring series, or a seat in a group session (its card lists the other participants).
    mark = "↻ " if appt.series_id is not None else "👥 " if appt.group_id is not None else ""
    return f"{number}. {mark}{moment} · {service} · {how} · {who}{extra} ({status})"


def open_button(_: Gettext, number: int, appt: AppointmentRow) -> InlineKeyboardButton:
    name = appt.client.name or _("Client")
    return button(_("#{number} {name}").format(number=number, name=name[:30]), "c", appt.id)


def pending_first(appts: list[AppointmentRow]) -> list[AppointmentRow]:
    """Requests and proposals waiting for an answer come first, then the rest, each by time."""
    return sorted(appts, key=lambda a: (a.status not in PENDING_STATUSES, a.start, a.id))


def agenda(practice: Practice, appts: list[AppointmentRow], lang: str, *, started: set[int]) -> Message:
    """One line and one button per appointment; those that have begun and are confirmed get Came / Did not come."""
    _ = gettext_for(lang)
    new = [button(_("+ New visit"), "new")]
    if not appts:
        return Message(_("No appointments in the coming week."), InlineKeyboardMarkup([new]))
    lines, rows = [_("Your agenda:")], []
    for i, appt in enumerate(pending_first(appts), 1):
        lines.append(line(_, lang, practice, i, appt))
        row = [open_button(_, i, appt)]
        if appt.id in started and appt.status == Status.CONFIRMED:
            row += [
                InlineKeyboardButton(_("#{number} came").format(number=i), callback_data=f"s|m|{appt.id}|1"),
                InlineKeyboardButton(_("#{number} did not come").format(number=i), callback_data=f"s|m|{appt.id}|0"),
            ]
        rows.append(row)
    rows.append(new)
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))
