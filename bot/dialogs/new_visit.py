"""Staff dialogs on one edited message: /new (a visit on a client's behalf), moving and cancelling a visit.

Steps run in the order of FLOWS; a step with a single answer is filled in and skipped. "options" comes
after the time is chosen and is where choices about the whole visit go (flags today).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import Any

from telegram import InlineKeyboardButton

from bot import callback
from bot.deps import Deps
from bot.dialogs import series_staff
from bot.dialogs.booking import Screen
from bot.dialogs.card import flag_label, problem_lines
from bot.dialogs.render import Gettext, appointment_lines, channel_label, day_label, month_grid, time_label, when
from bot.dialogs.work import Work
from bot.i18n import gettext_for
from scheduling.booking import AlreadyDecided, InvalidRequest
from scheduling.booking import NotAllowed as Refused
from scheduling.calendar import CalendarUnavailable
from scheduling.clients import InvalidContact
from scheduling.model import Channel, Flag
from scheduling.recurrence import MAX_INTERVAL_WEEKS, Scope
from scheduling.series import DateConflict, SeriesChange, SeriesConflicts, SeriesRequest
from scheduling.slots import service_channels
from scheduling.staff import Check, NotAllowed, Staff
from scheduling.staff_changes import Move, Moved
from scheduling.store import AppointmentRow
from scheduling.visits import NeedsDecision, Visit

FLOWS: dict[str, tuple[str, ...]] = {
    "new": ("client", "newclient", "specialist", "service", "location", "channel", "day", "time", "options", "summary"),
    "move": ("scope", "day", "time", "summary"),
    "cancel": ("scope", "notice"),
    "recur": ("options", "summary"),  # a client's single request approved as a course
}
# The Work fields each step sets; going back to a step clears its own and every later one's.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "client": ("client",),
    "newclient": ("new_client",),
    "specialist": ("specialist",),
    "service": ("service",),
    "location": ("location",),
    "channel": ("channel",),
    "day": ("day",),
    "time": ("start",),
    "options": (),
    "summary": ("accepted",),
    "notice": (),
    "scope": ("scope",),
}
MONTHS_BACK, MONTHS_AHEAD = 12, 24
_HHMM = re.compile(r"^\s*([01]?\d|2[0-3])[:.]([0-5]\d)\s*$")


class Forged(Exception):
    """Callback data no screen of this dialog could have produced."""


@dataclass
class Ctx:
    d: Deps
    staff: Staff
    work: Work
    lang: str

    @property
    def _(self) -> Gettext:
        return gettext_for(self.lang)


@dataclass
class Outcome:
    """The next screen, and what was done when the dialog ended (for the handler to tell people)."""

    screen: Screen
    booked: AppointmentRow | None = None
    moved: Move | None = None
    cancelled: AppointmentRow | None = None
    series: SeriesChange | None = None  # a change to a series' visits, told to the client in one message


def _button(label: str, *parts: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data="|".join(("v", *parts)))


def _nav(c: Ctx) -> list[InlineKeyboardButton]:
    back = any(step != c.work.step for step in c.work.history)
    return [*([_button(c._("« Back"), "back")] if back else []), _button(c._("Cancel"), "x")]


def _grid(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


async def _appt(c: Ctx) -> AppointmentRow:
    assert c.work.appt is not None
    appt, _staff = await c.d.staff_changes.load(c.work.appt, c.staff.telegram_id)
    return appt


def _with_notice(c: Ctx, text: str) -> str:
    notice, c.work.notice = c.work.notice, None
    return f"<b>{escape(notice)}</b>\n\n{text}" if notice else text


async def _header(c: Ctx) -> str:
    """What has been chosen so far."""
    w, _ = c.work, c._
    lines: list[str] = []
    if w.client is not None:
        async with c.d.store.tx() as tx:
            client = await tx.get_client(w.client)
        if client is not None:
            contact = ", ".join(escape(x) for x in (client.name, client.phone) if x)
            lines.append(_("Client: {name}").format(name=contact))
    if w.service and w.location:
        lines += appointment_lines(
            _,
            c.lang,
            c.d.practice,
            service_id=w.service,
            location_id=w.location,
            specialist_id=w.specialist,
            start=datetime.fromisoformat(w.start) if w.start else None,
            channel=w.channel,
        )
    return "\n".join(lines) + "\n\n" if lines else ""


# --- screens --------------------------------------------------------------------------------------


async def screen_client(c: Ctx) -> Screen | str:
    w, _ = c.work, c._
    rows: list[list[InlineKeyboardButton]] = []
    text = _("Whom is the visit for? Type part of the client's name or phone number.")
    if w.new_client.get("query"):
        found = await c.d.records.search(c.staff.telegram_id, w.new_client["query"])
        if found:
            text = _("Choose the client, or type again:")
            rows += [[_button(", ".join(x for x in (cl.name, cl.phone) if x), "cl", str(cl.id))] for cl in found]
        else:
            text = _("Nobody found for “{query}”. Type again, or add a new client.").format(
                query=escape(w.new_client["query"])
            )
    w.expect = "query"
    rows.append([_button(_("+ New client"), "nc")])
    return Screen(_with_notice(c, text), [*rows, _nav(c)])


async def screen_newclient(c: Ctx) -> Screen | str:
    w, _ = c.work, c._
    if w.client is not None:
        return "known"
    stage = w.expect if w.expect in ("name", "phone", "email") else "name"
    w.expect = stage
    if stage == "name":
        return Screen(_with_notice(c, _("Type the new client's first and last name.")), [_nav(c)])
    if stage == "phone":
        return Screen(_with_notice(c, _("Type their phone number.")), [_nav(c)])
    text = _("Type their e-mail address, or tap Skip.")
    return Screen(_with_notice(c, text), [[_button(_("Skip"), "skip")], _nav(c)])


def _specialists(c: Ctx) -> list[str]:
    """Whom the visit can be with: the specialist themself, or anyone for an admin (their own name first)."""
    return sorted(c.staff.specialist_ids, key=lambda s: s != c.staff.own)


async def screen_specialist(c: Ctx) -> Screen | str:
    ids = _specialists(c)
    if len(ids) == 1:
        return ids[0]
    rows = [[_button(c.d.practice.specialist_by_id[i].name, "pick", i)] for i in ids]
    return Screen(await _header(c) + c._("With whom?"), [*rows, _nav(c)])


def _services(c: Ctx) -> list[str]:
    assert c.work.specialist
    return list(c.d.practice.specialist_by_id[c.work.specialist].services)


async def screen_service(c: Ctx) -> Screen | str:
    ids = _services(c)
    if len(ids) == 1:
        return ids[0]
    rows = []
    for i in ids:
        s = c.d.practice.service_by_id[i]
        rows.append([_button(c._("{name} · {minutes} min").format(name=s.name, minutes=s.duration), "pick", i)])
    return Screen(await _header(c) + c._("Which service?"), [*rows, _nav(c)])


def _locations(c: Ctx) -> list[str]:
    return [loc.id for loc in c.d.practice.locations]


async def screen_location(c: Ctx) -> Screen | str:
    ids = _locations(c)
    if len(ids) == 1:
        return ids[0]
    rows = [[_button(c.d.practice.location_by_id[i].name, "pick", i)] for i in ids]
    return Screen(await _header(c) + c._("Where?"), [*rows, _nav(c)])


def _channels(c: Ctx) -> list[str]:
    assert c.work.service and c.work.location
    service = c.d.practice.service_by_id[c.work.service]
    return [str(ch) for ch in service_channels(c.d.practice, service, c.work.location)]


async def screen_channel(c: Ctx) -> Screen | str:
    ids = _channels(c)
    if len(ids) == 1:
        return ids[0]
    rows = [[_button(channel_label(c._, ch), "pick", ch)] for ch in ids]
    return Screen(await _header(c) + c._("How will you meet?"), [*rows, _nav(c)])


def _today(c: Ctx) -> date:
    assert c.work.location
    return c.d.booking.today(c.work.location)


def _month_range(c: Ctx) -> tuple[date, date]:
    today = _today(c).replace(day=1)
    first = (today - timedelta(days=31 * MONTHS_BACK)).replace(day=1)
    last = (today + timedelta(days=31 * MONTHS_AHEAD)).replace(day=1)
    return first, last


async def screen_day(c: Ctx) -> Screen | str:
    """Every day can be chosen; days with free times show their number plain, the others in brackets."""
    w, _ = c.work, c._
    assert w.service and w.location and w.specialist
    month = date.fromisoformat((w.month or _today(c).isoformat()[:7]) + "-01")
    last_of_month = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    try:
        free = await c.d.booking.month_days(w.service, w.location, [w.specialist], month, last_of_month)
    except CalendarUnavailable:
        free = set()
        w.notice = _("The calendar cannot be read right now; free times are not marked.")
    first, last = _month_range(c)

    def cell(day: date) -> InlineKeyboardButton:
        return _button(str(day.day) if day in free else f"({day.day})", "day", day.isoformat())

    rows = month_grid(c.lang, month, first_month=first, last=last, button=_button, cell=cell)
    text = _("Choose a day; days in brackets have no free times, but can still be chosen.")
    return Screen(_with_notice(c, await _header(c) + text), [*rows, _nav(c)])


async def screen_time(c: Ctx) -> Screen | str:
    w, _ = c.work, c._
    assert w.service and w.location and w.specialist and w.day
    day = date.fromisoformat(w.day)
    try:
        slots = await c.d.booking.day_slots(w.service, w.location, [w.specialist], day)
    except CalendarUnavailable:
        slots = []
        w.notice = _("The calendar cannot be read right now; type the time as HH:MM.")
    times = [
        _button(time_label(c.lang, c.d.practice, w.location, s.start), "time", str(int(s.start.timestamp()) // 60))
        for s in slots
    ]
    w.expect = "time"
    text = (
        _("Free times on {day}, or type any time as HH:MM:")
        if times
        else _("No free times on {day}. Type a time as HH:MM:")
    ).format(day=day_label(c.lang, day))
    return Screen(_with_notice(c, await _header(c) + text), [*_grid(times, 4), _nav(c)])


REPEAT_COUNTS = (4, 6, 8, 10, 12)
_DMY = re.compile(r"^\s*(\d{1,2})[./-](\d{1,2})[./-](\d{4})\s*$")


def _repeat_text(c: Ctx) -> str:
    """'Repeats: no' or 'Repeats: every 2 weeks, 8 visits' / '..., until 30 January 2027'."""
    w, _ = c.work, c._
    if not w.repeat_weeks:
        return _("Repeats: no.")
    every = series_staff.every(_, w.repeat_weeks)
    if w.repeat_until:
        end = _("until {day}").format(day=day_label(c.lang, date.fromisoformat(w.repeat_until)))
    else:
        end = _("{count} visits").format(count=w.repeat_count)
    return _("Repeats: {every}, {end}.").format(every=every, end=end)


async def screen_options(c: Ctx) -> Screen | str:
    """Flags for the staff, and whether the visit repeats (every 1-4 weeks, a number of visits or until a date)."""
    w, _ = c.work, c._
    flags = [_button(("✓ " if f in w.flags else "") + flag_label(_, f), "flag", str(f)) for f in Flag]
    every = [
        _button(("✓ " if w.repeat_weeks == n else "") + series_staff.every_button(_, n), "rep", str(n))
        for n in range(1, MAX_INTERVAL_WEEKS + 1)
    ]
    if w.flow == "recur":
        lines = [_("Approve the request and book the same time again:"), "", _repeat_text(c)]
        rows = [every[:2], every[2:]]
    else:
        lines = [_("Flags for the staff (the client never sees them):"), "", _repeat_text(c)]
        rows = [flags, [_button(("✓ " if not w.repeat_weeks else "") + _("Once"), "rep", "0")], every[:2], every[2:]]
    if w.repeat_weeks:
        counts = [
            _button(("✓ " if w.repeat_count == n and not w.repeat_until else "") + str(n), "cnt", str(n))
            for n in REPEAT_COUNTS
        ]
        rows.append(counts)
        lines.append(_("Choose how many visits, or type the date of the last one (DD.MM.YYYY)."))
    w.expect = "until" if w.repeat_weeks else ""
    rows += [[_button(_("Continue"), "ok")], _nav(c)]
    return Screen(_with_notice(c, await _header(c) + "\n".join(lines)), rows)


def _visit(c: Ctx) -> Visit:
    w = c.work
    assert w.client is not None and w.specialist and w.service and w.location and w.channel and w.start
    return Visit(
        client_id=w.client,
        specialist_id=w.specialist,
        service_id=w.service,
        location_id=w.location,
        channel=Channel(w.channel),
        start=datetime.fromisoformat(w.start),
        flags=frozenset(Flag(f) for f in w.flags),
    )


def _problems_text(c: Ctx, check: Check) -> str:
    _ = c._
    if not check.problems and not check.calendar_unchecked:
        return _("No conflicts.")
    lines = problem_lines(_, c.lang, c.d.practice, check)
    if check.blocking:
        lines.append(
            _("Another appointment of the practice is at this time, so it cannot be saved. Choose another time.")
        )
    return "\n".join(lines)


def _save_buttons(c: Ctx, check: Check, save: str, anyway: str) -> list[list[InlineKeyboardButton]]:
    """Save (or Save anyway, having shown the warnings), or only another time when a collision blocks."""
    c.work.accepted = sorted(check.warnings)
    if check.blocking:
        return [[_button(c._("Choose another time"), "again")]]
    return [[_button(anyway if check.warnings else save, "save")]]


async def _tell_buttons(c: Ctx, client_uses_bot: bool) -> tuple[str, list[list[InlineKeyboardButton]]]:
    _ = c._
    if not client_uses_bot:
        return _("The client does not use the bot: tell them yourself."), []
    label = _("✓ Tell the client") if c.work.tell else _("Do not tell the client")
    reason = (
        _("Reason for the client: {reason}").format(reason=escape(c.work.reason))
        if c.work.reason
        else _("Type a reason to include it in the message (optional).")
    )
    c.work.expect = "reason"
    return reason, [[_button(label, "tell")]]


async def _ours(c: Ctx, specialist_id: str, starts: list[datetime]) -> set[str]:
    """Uids of the practice's own appointments around these times, so a collision with one is named as such."""
    async with c.d.store.tx() as tx:
        return await tx.known_uids(specialist_id, min(starts) - timedelta(days=1), max(starts) + timedelta(days=1))


def _conflicts_text(c: Ctx, location_id: str, total: int, conflicts: list[DateConflict], ours: set[str]) -> str:
    return series_staff.conflict_summary(c._, c.lang, c.d.practice, location_id, total, conflicts, ours)


async def screen_scope(c: Ctx) -> Screen | str:
    """A visit of a series: this one only, this and the following, or the whole series (future visits)."""
    appt = await _appt(c)
    if appt.series_id is None:
        return ""
    _ = c._
    async with c.d.store.tx() as tx:
        series = await tx.get_series(appt.series_id)
        rows = await tx.series_rows(appt.series_id)
    assert series is not None
    question = _("Move which visits?") if c.work.flow == "move" else _("Cancel which visits?")
    lines = [
        _("Appointment #{id}").format(id=appt.id)
        + " · "
        + escape(when(c.lang, c.d.practice, appt.location_id, appt.start)),
        series_staff.position(_, series, rows, appt),
        "",
        question,
    ]
    buttons = [[_button(series_staff.scope_label(_, s), "scope", str(s))] for s in Scope]
    return Screen(_with_notice(c, "\n".join(lines)), [*buttons, _nav(c)])


async def _series_move_summary(c: Ctx, appt: AppointmentRow) -> Screen:
    """The series visits a move concerns, old and new times, and every date that collides, before saving."""
    w, _ = c.work, c._
    assert w.scope and w.start
    plan = await c.d.series.check_move(
        appt.id, Scope(w.scope), datetime.fromisoformat(w.start), telegram_id=c.staff.telegram_id
    )
    ours = await _ours(c, appt.specialist_id, [start for _row, start in plan.moves])
    loc = appt.location_id
    lines = [
        _("Move {count} visits ({scope})?").format(
            count=len(plan.moves), scope=series_staff.scope_label(_, w.scope).lower()
        ),
        "",
    ]
    for row, start in plan.moves[: series_staff.MAX_DATES]:
        old, new = when(c.lang, c.d.practice, loc, row.start), when(c.lang, c.d.practice, loc, start)
        lines.append("• " + escape(_("{old} → {new}").format(old=old, new=new)))
    if len(plan.moves) > series_staff.MAX_DATES:
        lines.append("• …")
    lines += ["", _conflicts_text(c, loc, len(plan.moves), plan.conflicts, ours)]
    w.skip = [conflict.start.isoformat() for conflict in plan.conflicts] if plan.skippable else []
    tell_text, tell_rows = await _tell_buttons(c, appt.client.telegram_id is not None)
    if plan.conflicts and not plan.skippable:
        lines += ["", _("These visits cannot be moved there. Choose another time.")]
        return Screen(_with_notice(c, "\n".join(lines)), [[_button(_("Choose another time"), "again")], _nav(c)])
    if plan.conflicts:
        rows = [
            [_button(_("Skip those dates (their visits are cancelled)"), "save")],
            [_button(_("Choose another time"), "again")],
        ]
    else:
        rows = [[_button(_("Move"), "save")]]
    lines += ["", tell_text]
    return Screen(_with_notice(c, "\n".join(lines)), [*rows, *tell_rows, _nav(c)])


async def _appt_id(c: Ctx) -> int:
    return (await _appt(c)).id


def _repeat_args(c: Ctx) -> dict[str, Any]:
    """How often and how long, as the series service takes them."""
    w = c.work
    until = date.fromisoformat(w.repeat_until) if w.repeat_until else None
    return {"interval_weeks": w.repeat_weeks, "count": None if until else w.repeat_count, "until": until}


def _series_request(c: Ctx) -> SeriesRequest:
    v = _visit(c)
    w = c.work
    until = date.fromisoformat(w.repeat_until) if w.repeat_until else None
    return SeriesRequest(
        v.client_id,
        v.service_id,
        v.location_id,
        v.specialist_id,
        v.channel,
        v.start,
        interval_weeks=w.repeat_weeks,
        count=None if until else w.repeat_count,
        until=until,
    )


async def _series_summary(c: Ctx) -> Screen:
    """Every date of the course checked at once; colliding dates listed, to be skipped or the booking given up."""
    w, _ = c.work, c._
    try:
        if w.flow == "recur":
            plan = await c.d.series.plan_approval(await _appt_id(c), c.staff.telegram_id, **_repeat_args(c))
        else:
            plan = await c.d.series.plan(_series_request(c))
    except InvalidRequest:
        w.notice = _("That does not make a course of at least two visits within a year. Please change it.")
        w.step = "options"
        return await render(c)
    assert w.location and w.specialist
    ours = await _ours(c, w.specialist, plan.starts)
    lines = [_("Please check the visits:"), "", (await _header(c)).rstrip(), _repeat_text(c), ""]
    lines += series_staff.date_lines(c.lang, c.d.practice, w.location, plan.starts)
    lines += ["", _conflicts_text(c, w.location, len(plan.starts), plan.conflicts, ours)]
    conflicts = SeriesConflicts(len(plan.starts), plan.conflicts)
    w.skip = [conflict.start.isoformat() for conflict in plan.conflicts] if conflicts.skippable else []
    save = _("Approve") if w.flow == "recur" else _("Save")
    if not plan.conflicts:
        rows = [[_button(save, "save")]]
    elif conflicts.skippable:
        rows = [[_button(_("Skip those dates and save"), "save")]]
    else:
        if w.flow == "recur":
            lines += ["", _("These dates cannot be booked. Change how often or how long, or approve the visit alone.")]
            rows = []
        else:
            lines += ["", _("These dates cannot be booked. Choose another time.")]
            rows = [[_button(_("Choose another time"), "again")]]
    return Screen(_with_notice(c, "\n".join(lines)), [*rows, _nav(c)])


async def screen_summary(c: Ctx) -> Screen | str:
    w, _ = c.work, c._
    if w.flow in ("new", "recur") and w.repeat_weeks:
        return await _series_summary(c)
    if w.flow == "move" and w.scope and w.scope != Scope.THIS:
        return await _series_move_summary(c, await _appt(c))
    if w.flow == "move":
        appt = await _appt(c)
        check = await c.d.staff_changes.check_move(appt.id, c.staff.telegram_id, datetime.fromisoformat(w.start or ""))
        tell_text, tell_rows = await _tell_buttons(c, appt.client.telegram_id is not None)
        text = "\n".join(
            [
                _("Move appointment #{id} to this time?").format(id=appt.id),
                "",
                await _header(c),
                _problems_text(c, check),
                "",
                tell_text,
            ]
        )
        rows = _save_buttons(c, check, _("Move"), _("Move anyway"))
        return Screen(_with_notice(c, text), [*rows, *([] if check.blocking else tell_rows), _nav(c)])
    check = await c.d.visits.check(_visit(c))
    lines = [_("Please check the visit:"), "", (await _header(c)).rstrip()]
    if w.flags:
        lines.append(_("Flags: {flags}").format(flags=", ".join(flag_label(_, f) for f in sorted(w.flags))))
    lines += ["", _problems_text(c, check)]
    rows = _save_buttons(c, check, _("Save"), _("Save anyway"))
    return Screen(_with_notice(c, "\n".join(lines)), [*rows, _nav(c)])


async def screen_notice(c: Ctx) -> Screen | str:
    """Cancelling: tell the client (default yes), with an optional reason."""
    appt = await _appt(c)
    tell_text, tell_rows = await _tell_buttons(c, appt.client.telegram_id is not None)
    if c.work.scope:
        targets = await c.d.series.targets(appt.id, Scope(c.work.scope), telegram_id=c.staff.telegram_id)
        lines = [
            c._("Cancel {count} visits ({scope})?").format(
                count=len(targets), scope=series_staff.scope_label(c._, c.work.scope).lower()
            ),
            "",
            *series_staff.date_lines(c.lang, c.d.practice, appt.location_id, [t.start for t in targets]),
            "",
            tell_text,
        ]
        rows = [[_button(c._("Cancel these visits"), "save")], *tell_rows]
        return Screen(_with_notice(c, "\n".join(lines)), [*rows, _nav(c)])
    lines = [
        c._("Cancel appointment #{id}?").format(id=appt.id),
        "",
        *appointment_lines(
            c._,
            c.lang,
            c.d.practice,
            service_id=appt.service_id,
            location_id=appt.location_id,
            specialist_id=appt.specialist_id,
            start=appt.start,
            channel=appt.channel,
        ),
        "",
        tell_text,
    ]
    rows = [[_button(c._("Cancel the visit"), "save")], *tell_rows]
    return Screen(_with_notice(c, "\n".join(lines)), [*rows, _nav(c)])


SCREENS = {
    "client": screen_client,
    "newclient": screen_newclient,
    "specialist": screen_specialist,
    "service": screen_service,
    "location": screen_location,
    "channel": screen_channel,
    "day": screen_day,
    "time": screen_time,
    "options": screen_options,
    "summary": screen_summary,
    "notice": screen_notice,
    "scope": screen_scope,
}


def _next(w: Work) -> str:
    steps = FLOWS[w.flow]
    return steps[steps.index(w.step) + 1]


async def render(c: Ctx) -> Screen:
    """The screen of the current step, filling in and skipping steps with a single answer."""
    while True:
        w = c.work
        if w.step not in ("client", "newclient", "time", "options", "summary", "notice"):
            w.expect = ""
        result = await SCREENS[w.step](c)
        if isinstance(result, Screen):
            if not w.history or w.history[-1] != w.step:
                w.history.append(w.step)
            return result
        if w.step in ("specialist", "service", "location", "channel", "scope"):
            setattr(w, w.step, result)
        w.step = _next(w)


def begin(c: Ctx, flow: str, appt: AppointmentRow | None = None) -> None:
    """Start a flow; moving and cancelling start from the appointment's own choices."""
    w = Work(flow=flow, step=FLOWS[flow][0], message=c.work.message)
    if appt is not None:
        w.appt, w.client = appt.id, appt.client_id
        w.specialist, w.service, w.location, w.channel = (
            appt.specialist_id,
            appt.service_id,
            appt.location_id,
            appt.channel,
        )
        w.month = appt.start.astimezone(c.d.practice.zone(appt.location_id)).isoformat()[:7]
        if flow == "recur":
            w.start, w.repeat_weeks, w.repeat_count = appt.start.isoformat(), 1, REPEAT_COUNTS[0]
    c.work = w


def go_back(w: Work) -> None:
    if w.history and w.history[-1] == w.step:
        w.history.pop()
    if not w.history:
        return
    target = w.history[-1]
    steps = FLOWS[w.flow]
    for step in steps[steps.index(target) :]:
        for name in STEP_FIELDS[step]:
            setattr(w, name, [] if name == "accepted" else {} if name == "new_client" else None)
    w.expect, w.step = "", target


async def on_button(c: Ctx, verb: str, arg: str) -> Outcome:
    """Apply one tap; raise Forged for data no screen of this dialog shows now."""
    w, p = c.work, c.d.practice
    if verb == "back":
        go_back(w)
    elif verb == "nc" and w.step == "client":
        w.step, w.expect, w.new_client = "newclient", "name", {}
    elif verb == "cl" and w.step == "client" and (client_id := callback.number(arg)) is not None:
        found = await c.d.records.search(c.staff.telegram_id, w.new_client.get("query", ""))
        if client_id not in [cl.id for cl in found]:
            raise Forged(verb)
        w.client, w.step = client_id, _next(w)
    elif verb == "skip" and w.step == "newclient" and w.expect == "email":
        await _create_client(c, None)
    elif verb == "pick" and w.step in ("specialist", "service", "location", "channel"):
        allowed = {
            "specialist": _specialists,
            "service": _services,
            "location": _locations,
            "channel": _channels,
        }[w.step](c)
        if arg not in allowed:
            raise Forged(verb)
        setattr(w, w.step, arg)
        w.step = _next(w)
    elif verb == "month" and w.step == "day":
        try:
            month = date.fromisoformat(arg + "-01")
        except ValueError:
            raise Forged(verb) from None
        first, last = _month_range(c)
        if not first <= month <= last:
            raise Forged(verb)
        w.month = arg
    elif verb == "day" and w.step == "day":
        try:
            day = date.fromisoformat(arg)
        except ValueError:
            raise Forged(verb) from None
        first, last = _month_range(c)
        if not first <= day < last + timedelta(days=31):
            raise Forged(verb)
        w.day, w.step = arg, "time"
    elif verb == "time" and w.step == "time" and (minutes := callback.number(arg)) is not None:
        start = datetime.fromtimestamp(minutes * 60, UTC)
        assert w.location and w.day
        if start.astimezone(p.zone(w.location)).date().isoformat() != w.day:
            raise Forged(verb)
        w.start, w.step = start.isoformat(), _next(w)
    elif verb == "scope" and w.step == "scope" and arg in Scope.__members__.values():
        w.scope, w.step = arg, _next(w)
    elif verb == "flag" and w.step == "options" and arg in Flag.__members__.values():
        w.flags = sorted(set(w.flags) ^ {arg})
    elif verb == "rep" and w.step == "options" and arg.isdigit() and int(arg) <= MAX_INTERVAL_WEEKS:
        w.repeat_weeks = int(arg)
        if w.repeat_weeks and w.repeat_count is None and w.repeat_until is None:
            w.repeat_count = REPEAT_COUNTS[0]
    elif verb == "cnt" and w.step == "options" and w.repeat_weeks and arg.isdigit() and int(arg) in REPEAT_COUNTS:
        w.repeat_count, w.repeat_until = int(arg), None
    elif verb == "ok" and w.step == "options":
        w.step = _next(w)
    elif verb == "tell" and w.step in ("summary", "notice") and w.flow in ("move", "cancel"):
        w.tell = not w.tell
    elif verb == "again" and w.step == "summary":
        w.history = [s for s in w.history if s not in ("time", "summary")]
        w.start, w.step = None, "time"
    elif verb == "save" and w.step in ("summary", "notice"):
        return await _save(c)
    else:
        raise Forged(verb)
    return Outcome(await render(c))


async def _save(c: Ctx) -> Outcome:
    w, _ = c.work, c._
    try:
        if w.flow == "recur":
            assert w.appt is not None
            skip = [datetime.fromisoformat(s) for s in w.skip]
            _series, rows = await c.d.series.approve_recurring(
                w.appt, c.staff.telegram_id, skip=skip, **_repeat_args(c)
            )
            return Outcome(Screen(_("Approved."), done=True), booked=rows[0])
        if w.flow == "new" and w.repeat_weeks:
            skip = [datetime.fromisoformat(s) for s in w.skip]
            flags = [Flag(f) for f in w.flags]
            _series, rows = await c.d.series.create_for(c.staff, _series_request(c), skip=skip, flags=flags)
            return Outcome(Screen(_("Saved."), done=True), booked=rows[0])
        if w.flow == "new":
            appt = await c.d.visits.book(c.staff, _visit(c), w.accepted)
            return Outcome(Screen(_("Saved."), done=True), booked=appt)
        if w.scope and not (w.flow == "move" and w.scope == Scope.THIS):
            # One visit of a series moves like a single visit (warnings may be accepted); the series'
            # calendar resource gets an override for it.
            return await _save_series(c)
        if w.flow == "move":
            assert w.appt is not None and w.start
            move = await c.d.staff_changes.move(
                w.appt,
                c.staff.telegram_id,
                datetime.fromisoformat(w.start),
                accepted=w.accepted,
                tell=w.tell,
                reason=w.reason,
            )
            return Outcome(Screen(_("Moved."), done=True), moved=move)
        assert w.appt is not None
        appt = await c.d.staff_changes.cancel(w.appt, c.staff.telegram_id, tell=w.tell, reason=w.reason)
        return Outcome(Screen(_("Cancelled."), done=True), cancelled=appt)
    except (NeedsDecision, SeriesConflicts):
        w.notice = _("Something changed meanwhile; please look again.")
    except (AlreadyDecided, Moved, NotAllowed, Refused):
        return Outcome(Screen(_("Nothing changed: this appointment has changed meanwhile."), done=True))
    return Outcome(await render(c))


async def _save_series(c: Ctx) -> Outcome:
    """Move or cancel visits of a series by the chosen scope; a collision that appeared meanwhile shows again."""
    w, _ = c.work, c._
    assert w.appt is not None and w.scope
    scope, who = Scope(w.scope), c.staff.telegram_id
    if w.flow == "cancel":
        change = await c.d.series.cancel(w.appt, scope, telegram_id=who, reason=w.reason)
        return Outcome(Screen(_("Cancelled."), done=True), series=change)
    assert w.start
    skip = [datetime.fromisoformat(s) for s in w.skip]
    try:
        change = await c.d.series.move(w.appt, scope, datetime.fromisoformat(w.start), telegram_id=who, skip=skip)
    except SeriesConflicts:
        w.notice = _("Something changed meanwhile; please look again.")
        return Outcome(await render(c))
    return Outcome(Screen(_("Moved."), done=True), series=change)


async def _create_client(c: Ctx, email: str | None) -> None:
    w, _ = c.work, c._
    try:
        client = await c.d.records.create(
            c.staff.telegram_id, w.new_client.get("name", ""), w.new_client.get("phone", ""), email
        )
    except InvalidContact as exc:
        w.expect = exc.field
        w.notice = {
            "name": _("That does not look like a name. Please type the first and last name."),
            "phone": _(
                "That does not look like a phone number. Please include the country code, e.g. +48 601 234 567."
            ),
            "email": _("That does not look like an e-mail address. Please type it again, or tap Skip."),
        }[exc.field]
        return
    w.client, w.step = client.id, _next(w)


async def on_text(c: Ctx, text: str) -> Outcome | None:
    """Typed text the dialog waits for; None when it waits for none."""
    w, _ = c.work, c._
    text = text.strip()
    if w.expect == "query" and w.step == "client":
        w.new_client = {"query": text[:100]}
    elif w.step == "newclient" and w.expect == "name":
        w.new_client["name"], w.expect = text[:100], "phone"
    elif w.step == "newclient" and w.expect == "phone":
        w.new_client["phone"], w.expect = text[:40], "email"
    elif w.step == "newclient" and w.expect == "email":
        await _create_client(c, text[:254])
    elif w.expect == "time" and w.step == "time":
        start = _typed_time(c, text)
        if start is None:
            w.notice = _("Please type the time as HH:MM, e.g. 09:15.")
        elif start is SKIPPED:
            w.notice = _("That time does not exist on this day: the clocks change. Please type another.")
        else:
            w.start, w.step = start.isoformat(), _next(w)
    elif w.expect == "until" and w.step == "options":
        last = _typed_date(text)
        if last is None:
            w.notice = _("Please type the date of the last visit as DD.MM.YYYY, e.g. 30.01.2027.")
        else:
            w.repeat_until, w.repeat_count = last.isoformat(), None
    elif w.expect == "reason" and w.step in ("summary", "notice"):
        w.reason = text[:500]
    else:
        return None
    return Outcome(await render(c))


def _typed_date(text: str) -> date | None:
    match = _DMY.match(text)
    if match is None:
        return None
    try:
        return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        return None


# A typed wall-clock time that the day does not have (the hour the clocks skip in spring).
SKIPPED = datetime.min.replace(tzinfo=UTC)


def _typed_time(c: Ctx, text: str) -> datetime | None:
    """HH:MM on the chosen day in the location's zone, as UTC; None if malformed, SKIPPED if it does not exist."""
    match = _HHMM.match(text)
    w = c.work
    if match is None or w.day is None or w.location is None:
        return None
    zone = c.d.practice.zone(w.location)
    local = datetime.combine(date.fromisoformat(w.day), time(int(match[1]), int(match[2])), zone)
    start = local.astimezone(UTC)
    if start.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return SKIPPED
    return start
