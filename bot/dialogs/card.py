"""The appointment card staff see: every fact, notes, flags and history, with the actions the lifecycle allows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from babel.dates import format_datetime
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.render import Gettext, appointment_facts, status_label, when
from bot.dialogs.specialist import Message
from bot.i18n import gettext_for
from scheduling.config import Practice
from scheduling.conflicts import Problem, ProblemKind
from scheduling.model import ACTIVE_STATUSES, Flag, Status
from scheduling.staff import UNCHECKED, Check, Staff
from scheduling.store import AppointmentRow, ClientRow, StaffNoteRow, TransitionRow
from scheduling.visits import STAFF_SOURCE, parse_flags


def button(label: str, *parts: str | int) -> InlineKeyboardButton:
    """A workspace button: `k|verb|args`."""
    return InlineKeyboardButton(label, callback_data="|".join(("k", *map(str, parts))))


def flag_label(_: Gettext, flag: str) -> str:
    return {Flag.FIRST: _("First consultation"), Flag.ASAP: _("ASAP: wants an earlier time")}[Flag(flag)]


def actor_label(_: Gettext, practice: Practice, actor: str) -> str:
    """Who made a change, as staff read it ("specialist:9001" -> the specialist's name)."""
    kind, _sep, who = actor.partition(":")
    if kind in ("specialist", "admin") and who.isdigit():
        spec = next((s for s in practice.specialists if s.telegram_id == int(who)), None)
        if spec is not None:
            return escape(spec.name)
        return _("an admin")
    if kind == "client":
        return _("the client")
    if kind == "calendar":
        return _("the calendar app")
    return _("the bot")


def problem_text(_: Gettext, lang: str, practice: Practice, problem: Problem, check: Check) -> str:
    """One problem with a chosen time, in words; a collision names our appointment, never a private title."""
    if problem.kind == ProblemKind.COLLISION and problem.busy is not None:
        other = check.appointments.get(problem.busy.uid or "")
        if other is None:
            return _("It collides with a private event in the calendar.")
        mark = "↻ " if other.series_id is not None else ""  # a visit of a recurring series
        return _("It collides with another appointment: {service}, {client}, {when}.").format(
            service=mark + escape(practice.service_by_id[other.service_id].name),
            client=escape(other.client.name or _("Client")),
            when=escape(when(lang, practice, other.location_id, other.start)),
        )
    return {
        ProblemKind.PAST: _("It is in the past."),
        ProblemKind.LEAD_TIME: _("It is sooner than the minimum notice."),
        ProblemKind.BEYOND_HORIZON: _("It is beyond the booking horizon."),
        ProblemKind.OUTSIDE_LOCATION_SCHEDULE: _("It is outside this location's schedule."),
        ProblemKind.OUTSIDE_ANY_SCHEDULE: _("It is outside any schedule."),
        ProblemKind.CHANNEL_NOT_ALLOWED: _("This way of meeting is not offered at that time."),
        ProblemKind.SERVICE_NOT_OFFERED: _("The specialist does not offer this service."),
        ProblemKind.OFF_GRID: _("It is not one of the service's usual start times."),
    }[problem.kind]


def problem_lines(_: Gettext, lang: str, practice: Practice, check: Check) -> list[str]:
    """Every problem of a check, blocking ones first, each on its own line."""
    ordered = check.blocking + [p for p in check.problems if p not in check.blocking]
    lines = [f"⚠️ {problem_text(_, lang, practice, p, check)}" for p in ordered]
    if check.calendar_unchecked:
        lines.append("⚠️ " + _("The calendar could not be read, so other events were not checked."))
    return lines


def _warning_names(_: Gettext, kinds: Sequence[str]) -> str:
    names = {
        ProblemKind.PAST: _("in the past"),
        ProblemKind.LEAD_TIME: _("minimum notice"),
        ProblemKind.BEYOND_HORIZON: _("beyond the horizon"),
        ProblemKind.OUTSIDE_LOCATION_SCHEDULE: _("outside this location's schedule"),
        ProblemKind.OUTSIDE_ANY_SCHEDULE: _("outside any schedule"),
        ProblemKind.COLLISION: _("collides with a private event"),
        ProblemKind.CHANNEL_NOT_ALLOWED: _("way of meeting not offered then"),
        ProblemKind.OFF_GRID: _("unusual start time"),
    }
    return ", ".join(_("calendar not checked") if k == UNCHECKED else names.get(ProblemKind(k), k) for k in kinds)


def _stamp(lang: str, practice: Practice, location_id: str, at: datetime) -> str:
    return format_datetime(at.astimezone(practice.zone(location_id)), "d MMM HH:mm", locale=lang)


def history_line(_: Gettext, lang: str, practice: Practice, appt: AppointmentRow, row: TransitionRow) -> str:
    """One history row: when, who, and what changed."""
    details = row.details or {}
    what: list[str] = []
    if row.from_status is None:
        what.append(_("created ({status})").format(status=status_label(_, row.to_status)))
    elif row.from_status != row.to_status:
        what.append(status_label(_, row.to_status))
    if "new_start" in details:
        old = datetime.fromisoformat(details["old_start"])
        new = datetime.fromisoformat(details["new_start"])
        what.append(
            _("moved from {old} to {new}").format(
                old=_stamp(lang, practice, appt.location_id, old), new=_stamp(lang, practice, appt.location_id, new)
            )
        )
    if details.get("overridden"):
        what.append(_("saved despite: {warnings}").format(warnings=_warning_names(_, details["overridden"])))
    if "reassign_offered_to" in details:
        what.append(_("offered to {name}").format(name=_specialist(practice, details["reassign_offered_to"])))
    if "reassigned_to" in details:
        what.append(
            _("handed over from {old} to {new}").format(
                old=_specialist(practice, details.get("reassigned_from", "")),
                new=_specialist(practice, details["reassigned_to"]),
            )
        )
    if "reassign_refused_by" in details:
        what.append(_("handover refused"))
    if "flag" in details:
        template = _("flag set: {flag}") if details.get("on") else _("flag removed: {flag}")
        what.append(template.format(flag=flag_label(_, details["flag"])))
    if details.get("told") is False:
        what.append(_("client not told"))
    if row.reason:
        what.append(_("reason: {reason}").format(reason=escape(row.reason)))
    stamp = _stamp(lang, practice, appt.location_id, row.at)
    return f"· {stamp} · {actor_label(_, practice, row.actor)}: " + "; ".join(what or [status_label(_, row.to_status)])


def _specialist(practice: Practice, spec_id: str) -> str:
    spec = practice.specialist_by_id.get(spec_id)
    return escape(spec.name if spec else spec_id)


def note_line(_: Gettext, lang: str, practice: Practice, location_id: str, note: StaffNoteRow) -> str:
    stamp = _stamp(lang, practice, location_id, note.at)
    return f"· {stamp} · {actor_label(_, practice, note.author)}: {escape(note.text)}"


def card_text(
    practice: Practice,
    appt: AppointmentRow,
    client: ClientRow,
    notes: Sequence[StaffNoteRow],
    history: Sequence[TransitionRow],
    lang: str,
    series: str | None = None,
    participants: Sequence[AppointmentRow] = (),
    waiting: Sequence[str] = (),
) -> str:
    """Everything staff know about one appointment (HTML); `series` places a series visit in its course, a
    seat's card lists its group session's participants, `waiting` is the client's waiting list."""
    _ = gettext_for(lang)
    lines = [
        _("<b>Appointment #{id}</b> · {status}").format(id=appt.id, status=status_label(_, appt.status)),
        "",
        *appointment_facts(_, lang, practice, appt),
        *(["↻ " + series] if series else []),
        _("Client: {name}").format(name=escape(client.name or "")),
        _("Phone: {phone}").format(phone=escape(client.phone or "")),
    ]
    if client.email:
        lines.append(_("E-mail: {email}").format(email=escape(client.email)))
    if client.telegram_id is None:
        lines.append(_("The client does not use the bot: tell them yourself."))
    if appt.source == STAFF_SOURCE:
        lines.append(_("Booked by the practice."))
    elif appt.source:
        lines.append(_("Source: {source}").format(source=escape(appt.source)))
    if appt.note:
        lines.append(_("Client's note: {note}").format(note=escape(appt.note)))
    if appt.reassign_to:
        lines.append(
            _("Offered to {name}, waiting for an answer.").format(name=_specialist(practice, appt.reassign_to))
        )
    flags = parse_flags(appt.flags)
    if flags:
        lines.append(_("Flags: {flags}").format(flags=", ".join(flag_label(_, f) for f in sorted(flags))))
    lines += waiting
    if participants:
        lines += ["", *participant_lines(_, practice, appt, participants)]
    if notes:
        lines += ["", _("Staff notes:")]
        lines += [note_line(_, lang, practice, appt.location_id, n) for n in notes]
    if history:
        lines += ["", _("History:")]
        lines += [history_line(_, lang, practice, appt, row) for row in history]
    return "\n".join(lines)


def participant_lines(
    _: Gettext, practice: Practice, appt: AppointmentRow, participants: Sequence[AppointmentRow]
) -> list[str]:
    """The group session's participants, each with where their seat stands (came, did not come, ...)."""
    seats = practice.service_by_id[appt.service_id].seats
    taken = [p for p in participants if p.status in ACTIVE_STATUSES or p.status in (Status.COMPLETED, Status.NO_SHOW)]
    lines = [_("Participants ({taken} of {seats}):").format(taken=len(taken), seats=seats)]
    for p in participants:
        mark = " ◀" if p.id == appt.id else ""
        name = escape(p.client.name or _("Client"))
        lines.append(f"· #{p.id} {name}: {status_label(_, p.status)}{mark}")
    return lines


def _attendance_rows(
    _: Gettext, appt: AppointmentRow, participants: Sequence[AppointmentRow]
) -> list[list[InlineKeyboardButton]]:
    """Came / did not come for every participant whose seat is confirmed; the card shown stays `appt`'s."""
    rows = []
    for p in participants:
        if p.status == Status.CONFIRMED:
            name = (p.client.name or _("Client"))[:20]
            rows.append(
                [
                    button(_("{name}: came").format(name=name), "k", p.id, 1, appt.id),
                    button(_("{name}: did not come").format(name=name), "k", p.id, 0, appt.id),
                ]
            )
    return rows


def card_actions(
    practice: Practice,
    appt: AppointmentRow,
    client: ClientRow,
    staff: Staff,
    *,
    begun: bool,
    lang: str,
    participants: Sequence[AppointmentRow] = (),
) -> list[list[InlineKeyboardButton]]:
    """The card's buttons: only what the lifecycle and this person's role allow (the server checks again)."""
    _ = gettext_for(lang)
    status, rows = Status(appt.status), []
    if appt.reassign_to and appt.reassign_to == staff.own and not staff.may_act(appt):
        # A colleague asked this specialist to take the appointment over.
        return [[button(_("Take over"), "ry", appt.id), button(_("Refuse"), "rn", appt.id)]]
    if not staff.may_act(appt):
        return []
    if status == Status.REQUESTED:
        rows.append(
            [
                button(_("Approve"), "a", appt.id),
                InlineKeyboardButton(_("Decline"), callback_data=f"s|d|{appt.id}"),
            ]
        )
        # A seat joins one session; a weekly group is not booked seat by seat.
        if (
            appt.series_id is None
            and appt.replaces_id is None
            and appt.partner_booking is None
            and appt.group_id is None
        ):
            rows.append([button(_("Approve as recurring"), "ar", appt.id)])
    if status in ACTIVE_STATUSES and appt.group_id is not None:
        rows.append([button(_("Cancel visit"), "cx", appt.id)])  # a seat keeps its session's time and specialist
    elif status in ACTIVE_STATUSES:
        rows.append([button(_("Move"), "mv", appt.id), button(_("Cancel visit"), "cx", appt.id)])
        if appt.reassign_to:
            rows.append([button(_("Withdraw the handover"), "rn", appt.id)])
        elif appt.series_id is None:  # a series visit lives in its series' calendar resource: it stays with it
            rows.append([button(_("Reassign"), "ra", appt.id)])
    if participants and begun:
        rows += _attendance_rows(_, appt, participants)
    elif status == Status.CONFIRMED and begun:
        rows.append([button(_("Came"), "k", appt.id, 1), button(_("Did not come"), "k", appt.id, 0)])
    flags = parse_flags(appt.flags)
    rows.append([button(("✓ " if f in flags else "") + flag_label(_, f), "f", appt.id, str(f)) for f in Flag])
    row = [button(_("Add a note"), "n", appt.id)]
    if status in (Status.CONFIRMED, Status.PROPOSED) and client.telegram_id is not None:
        row.append(button(_("Send the .ics again"), "i", appt.id))
    rows.append(row)
    row = [button(_("Client record"), "cl", appt.client_id)]
    if staff.admin:
        row.append(button(_("Delete"), "del", appt.id))
    rows.append(row)
    if staff.admin and status == Status.REQUESTED and client.telegram_id is not None:
        # One person flooding the practice with requests: all of theirs go in one step.
        rows.append([button(_("Decline all of this client's requests"), "dall", appt.id)])
    return rows


def card(
    practice: Practice,
    appt: AppointmentRow,
    client: ClientRow,
    notes: Sequence[StaffNoteRow],
    history: Sequence[TransitionRow],
    staff: Staff,
    *,
    begun: bool,
    lang: str,
    series: str | None = None,
    participants: Sequence[AppointmentRow] = (),
    waiting: Sequence[str] = (),
) -> Message:
    rows = card_actions(practice, appt, client, staff, begun=begun, lang=lang, participants=participants)
    text = card_text(practice, appt, client, notes, history, lang, series, participants, waiting)
    return Message(text, InlineKeyboardMarkup(rows) if rows else None)
