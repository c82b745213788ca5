"""What staff are told when a calendar misbehaves: vanished events (with a choice) and writes that keep failing."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.calendar_sync import Incident
from scheduling.config import Practice

MAX_LISTED = 15


def _button(label: str, verb: str, incident_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=f"a|{verb}|{incident_id}")


def incident_message(practice: Practice, incident: Incident, lang: str) -> Message:
    """The vanished visits, and the two answers: restore them, or they really were cancelled."""
    _ = gettext_for(lang)
    spec = practice.specialist_by_id[incident.specialist_id]
    lines = [
        _("{count} visits of {specialist} are missing from the booking calendar.").format(
            count=len(incident.appointments), specialist=escape(spec.name)
        ),
        _("Nothing has been cancelled and no client was told. Were they cancelled, or did the calendar lose them?"),
        "",
    ]
    for appt in incident.appointments[:MAX_LISTED]:
        lines.append(f"• {when(lang, practice, appt.location_id, appt.start)}: {escape(appt.client.name or '')}")
    if len(incident.appointments) > MAX_LISTED:
        lines.append(_("…and {count} more").format(count=len(incident.appointments) - MAX_LISTED))
    markup = InlineKeyboardMarkup(
        [
            [_button(_("Restore them in the calendar"), "r", incident.id)],
            [_button(_("They were cancelled"), "c", incident.id)],
        ]
    )
    return Message("\n".join(lines), markup)


def incident_answered(practice: Practice, incident: Incident, restored: bool, lang: str) -> str:
    """The same message once someone answered it."""
    _ = gettext_for(lang)
    spec = practice.specialist_by_id[incident.specialist_id]
    if restored:
        return _("The {count} missing visits of {specialist} are being written to the calendar again.").format(
            count=len(incident.appointments), specialist=escape(spec.name)
        )
    return _("The {count} missing visits of {specialist} are cancelled; their clients have been told.").format(
        count=len(incident.appointments), specialist=escape(spec.name)
    )


def writes_failing_message(practice: Practice, specialist_id: str, error: str, lang: str) -> str:
    """Calendar writes have failed for longer than the alert time: the server's answer, and that nothing is lost."""
    _ = gettext_for(lang)
    spec = practice.specialist_by_id[specialist_id]
    return "\n".join(
        [
            _("Appointments cannot be written to the calendar of {specialist} for over {minutes} minutes.").format(
                specialist=escape(spec.name), minutes=practice.practice.calendar_alert_minutes
            ),
            _("Nothing is lost: they are kept and written as soon as the calendar server accepts them."),
            _("The server's last answer: {error}").format(error=f"<code>{escape(error or '-')}</code>"),
        ]
    )
