"""What staff read about a recurring series: its dates, the dates that collide, and which visits a change concerns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from html import escape

from babel.dates import format_date

from bot.dialogs.render import Gettext, when
from scheduling.config import Practice
from scheduling.conflicts import Problem, ProblemKind
from scheduling.recurrence import Scope
from scheduling.series import DateConflict
from scheduling.store import AppointmentRow
from scheduling.store_series import SeriesRow

# Listing every date of a long course would drown the question: the first ones and a count of the rest.
MAX_DATES = 12


def every(_: Gettext, weeks: int) -> str:
    """'every week', 'every 2 weeks'."""
    return _("every week") if weeks == 1 else _("every {weeks} weeks").format(weeks=weeks)


def every_button(_: Gettext, weeks: int) -> str:
    """'Every week', 'Every 2 weeks' (a button)."""
    return _("Every week") if weeks == 1 else _("Every {weeks} weeks").format(weeks=weeks)


def short_date(lang: str, practice: Practice, location_id: str, start: datetime) -> str:
    """'14 Jan' in the location's zone."""
    return format_date(start.astimezone(practice.zone(location_id)).date(), "d MMM", locale=lang)


def _problem(_: Gettext, problem: Problem, ours: Collection[str]) -> str:
    if problem.kind == ProblemKind.COLLISION:
        busy = problem.busy
        if busy is not None and busy.uid in ours:
            return _("another appointment")
        return _("a private event")
    return {
        ProblemKind.PAST: _("in the past"),
        ProblemKind.LEAD_TIME: _("inside the minimum notice"),
        ProblemKind.BEYOND_HORIZON: _("beyond the booking horizon"),
        ProblemKind.OUTSIDE_LOCATION_SCHEDULE: _("outside this location's schedule"),
        ProblemKind.OUTSIDE_ANY_SCHEDULE: _("outside the schedule"),
        ProblemKind.CHANNEL_NOT_ALLOWED: _("way of meeting not offered then"),
        ProblemKind.SERVICE_NOT_OFFERED: _("service not offered"),
        ProblemKind.OFF_GRID: _("unusual start time"),
    }[problem.kind]


def conflict_summary(
    _: Gettext,
    lang: str,
    practice: Practice,
    location_id: str,
    total: int,
    conflicts: Sequence[DateConflict],
    ours: Collection[str],
) -> str:
    """'3 of 12 dates collide: 14 Jan, a private event; 21 Jan, outside the schedule; …' (or that none does)."""
    if not conflicts:
        return _("All {total} dates are free.").format(total=total)
    parts = []
    for conflict in sorted(conflicts, key=lambda c: c.start)[:MAX_DATES]:
        reasons = ", ".join(dict.fromkeys(_problem(_, p, ours) for p in conflict.problems))
        parts.append(f"{short_date(lang, practice, location_id, conflict.start)}, {reasons}")
    more = len(conflicts) - MAX_DATES
    tail = "; " + _("and {count} more").format(count=more) if more > 0 else ""
    head = _("{count} of {total} dates collide:").format(count=len(conflicts), total=total)
    return "⚠️ " + head + " " + escape("; ".join(parts)) + tail


def date_lines(lang: str, practice: Practice, location_id: str, starts: Sequence[datetime]) -> list[str]:
    """One bullet per date, the first MAX_DATES of them."""
    lines = ["• " + escape(when(lang, practice, location_id, s)) for s in sorted(starts)[:MAX_DATES]]
    if len(starts) > MAX_DATES:
        lines.append("• …")
    return lines


def position(_: Gettext, series: SeriesRow, rows: Sequence[AppointmentRow], appt: AppointmentRow) -> str:
    """'Recurring (every week): visit 3 of 8.'"""
    order = [r.id for r in rows if r.recurrence_id is not None]
    number = order.index(appt.id) + 1 if appt.id in order else 0
    return _("Recurring ({every}): visit {number} of {count}.").format(
        every=every(_, series.interval_weeks), number=number, count=len(order)
    )


def scope_label(_: Gettext, scope: Scope | str) -> str:
    return {
        Scope.THIS: _("This visit only"),
        Scope.FOLLOWING: _("This and the following"),
        Scope.ALL: _("The whole series"),
    }[Scope(scope)]
