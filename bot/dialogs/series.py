"""What a client is told about a recurring visit: one message per change, listing every date concerned."""

from __future__ import annotations

from html import escape

from bot.dialogs.render import Gettext, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice
from scheduling.model import IN_CALENDAR
from scheduling.series import SeriesChange
from scheduling.store import AppointmentRow
from scheduling.store_series import SeriesRow


def change_for_client(practice: Practice, change: SeriesChange, lang: str, reason: str | None = None) -> str:
    """The change in one message: each visit moved (old -> new time) or cancelled, in date order."""
    _ = gettext_for(lang)
    first = change.visits[0].appointment
    service = practice.service_by_id[first.service_id]
    heading = (
        _("The specialist changed your recurring visits ({service}):")
        if any(not v.removed for v in change.visits)
        else _("The specialist cancelled visits of your recurring appointment ({service}):")
    ).format(service=escape(service.name))
    lines = [heading, ""]
    for visit in sorted(change.visits, key=lambda v: v.old_start):
        appt = visit.appointment
        old = when(lang, practice, appt.location_id, visit.old_start)
        if visit.removed:
            lines.append("• " + _("{when}: cancelled").format(when=old))
        else:
            new = when(lang, practice, appt.location_id, appt.start)
            lines.append("• " + _("{old} → {new}").format(old=old, new=new))
    if reason:
        lines += ["", _("Reason: {reason}").format(reason=escape(reason))]
    lines += ["", _("The attached file updates your calendar."), _("Send /my to see or cancel your appointments.")]
    return "\n".join(lines)


def _every(_: Gettext, series: SeriesRow) -> str:
    if series.interval_weeks == 1:
        return _("every week")
    return _("every {weeks} weeks").format(weeks=series.interval_weeks)


def visit_dates(practice: Practice, series: SeriesRow, rows: list[AppointmentRow], lang: str) -> list[str]:
    """The series' rule and its visits still on, one line each."""
    _ = gettext_for(lang)
    on = [r for r in rows if r.status in IN_CALENDAR] or list(rows)  # a declined series: the dates it asked for
    lines = [_("Recurring: {every}, {count} visits:").format(every=_every(_, series), count=len(on))]
    lines += ["• " + when(lang, practice, r.location_id, r.start) for r in on]
    return lines


def with_dates(
    message: Message, practice: Practice, series: SeriesRow, rows: list[AppointmentRow], lang: str
) -> Message:
    """A message about the series' first visit, followed by all its dates."""
    return Message(message.text + "\n\n" + "\n".join(visit_dates(practice, series, rows, lang)), message.markup)
