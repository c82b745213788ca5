"""The client's own appointments: the list, moving one, and cancelling one (late, if need be)."""

from __future__ import annotations

from collections.abc import Collection
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.messages import write_button
from bot.dialogs.render import contact_the_practice, status_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.changes import movable
from scheduling.config import Practice, local
from scheduling.model import Status
from scheduling.store import AppointmentRow


def _button(label: str, verb: str, appt_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=f"m|{verb}|{appt_id}")


def _service(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    return escape(local(practice.service_by_id[appt.service_id].name, lang))


def listing(
    practice: Practice,
    appts: list[AppointmentRow],
    moves: dict[int, AppointmentRow],
    lang: str,
    waiting: Collection[int] = (),
    *,
    expand: int | None = None,
) -> Message:
    """Upcoming requests and appointments with their buttons; a pending move is shown under its visit.

    A series takes one line (its next visit and how many follow) unless it is the one `expand`ed.
    `waiting`: visits whose client waits for an earlier time.
    """
    _ = gettext_for(lang)
    if not appts:
        return Message(_("You have no upcoming appointments. Send /book to book one."))
    lines, rows = [_("Your upcoming appointments:")], []
    shown_series: set[int] = set()
    number = 0
    for appt in appts:
        if appt.series_id is not None and appt.series_id != expand:
            if appt.series_id in shown_series:
                continue
            shown_series.add(appt.series_id)
            number += 1
            same = [a for a in appts if a.series_id == appt.series_id]
            spec = practice.specialist_by_id[appt.specialist_id].name
            moment = when(lang, practice, appt.location_id, appt.start)
            lines.append(
                f"{number}. ↻ {escape(moment)}: {_service(practice, appt, lang)}, {escape(spec)} "
                + _("({count} upcoming visits)").format(count=len(same))
            )
            rows.append([_button(_("Show the visits of #{number}").format(number=number), "x", appt.id)])
            continue
        number += 1
        i = number
        spec = practice.specialist_by_id[appt.specialist_id].name
        moment = when(lang, practice, appt.location_id, appt.start)
        status = status_label(_, appt.status)
        mark = "↻ " if appt.series_id is not None else ""
        lines.append(f"{i}. {mark}{escape(moment)}: {_service(practice, appt, lang)}, {escape(spec)} ({status})")
        row = []
        move = moves.get(appt.id)
        if move is not None:
            to = when(lang, practice, move.location_id, move.start)
            lines.append("   " + _("Move to {when} requested; waiting for the specialist.").format(when=escape(to)))
            row.append(_button(_("Keep #{number} as is").format(number=i), "w", move.id))
        elif movable(appt):
            row.append(_button(_("Move #{number}").format(number=i), "mv", appt.id))
        row.append(_button(_("Cancel #{number}").format(number=i), "c", appt.id))
        rows.append(row)
        if appt.id in waiting:
            lines.append("   " + _("You are waiting for an earlier time."))
        elif appt.status == Status.CONFIRMED and move is None and appt.series_id is None and appt.group_id is None:
            rows.append([_button(_("Earlier time? #{number}").format(number=i), "e", appt.id)])
        rows.append([write_button(_("Message the specialist about #{number}").format(number=i), appt.id, staff=False)])
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
