"""What a client is told about a recurring visit: one message per change, listing every date concerned."""

from __future__ import annotations

from html import escape

from bot.dialogs.render import when
from bot.i18n import gettext_for
from scheduling.config import Practice
from scheduling.series import SeriesChange


def change_for_client(practice: Practice, change: SeriesChange, lang: str) -> str:
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
    lines += ["", _("The attached file updates your calendar."), _("Send /my to see or cancel your appointments.")]
    return "\n".join(lines)
