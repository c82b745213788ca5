"""Workspace screens besides the card: search results, client records, reassigning, deleting, and the
messages clients and staff receive about staff-made changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.dialogs.agenda import line, open_button
from bot.dialogs.card import button, flag_label
from bot.dialogs.render import Gettext, appointment_facts, contact_the_practice, when
from bot.dialogs.specialist import Message, _letter
from bot.i18n import gettext_for
from scheduling.config import Practice, local
from scheduling.model import ACTIVE_STATUSES
from scheduling.store import AppointmentRow, ClientRow, StaffNoteRow
from scheduling.visits import parse_flags


def _contact(client: ClientRow) -> str:
    return ", ".join(escape(x) for x in (client.name, client.phone, client.email) if x)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a list of appointments: a visit, or a whole series shown by its next visit."""

    appt: AppointmentRow
    upcoming: bool
    series: tuple[int, int] | None = None  # (upcoming visits, all visits) when the line stands for a series


def entries(appts: Sequence[AppointmentRow], now_index: int, expand: int | None = None) -> list[Entry]:
    """Visits in order, each series but `expand` folded into one line at its next visit (else its last one).

    `now_index`: how many of `appts` (sorted by start) have ended.
    """
    members: dict[int, list[int]] = {}
    for i, appt in enumerate(appts):
        if appt.series_id is not None and appt.series_id != expand:
            members.setdefault(appt.series_id, []).append(i)
    out: list[Entry] = []
    for i, appt in enumerate(appts):
        group = members.get(appt.series_id) if appt.series_id is not None else None
        if group is None:
            out.append(Entry(appt, i >= now_index))
            continue
        upcoming = [j for j in group if j >= now_index and appts[j].status in ACTIVE_STATUSES]
        if i == (upcoming[0] if upcoming else group[-1]):
            out.append(Entry(appt, i >= now_index, (len(upcoming), len(group))))
    return out


def _entry_rows(
    _: Gettext, lang: str, practice: Practice, number: int, entry: Entry, marks: str = ""
) -> tuple[str, list[InlineKeyboardButton]]:
    """The entry's line and its buttons: the visit's card, and for a series "Show all" (the client's record)."""
    appt = entry.appt
    text = line(_, lang, practice, number, appt) + marks
    buttons = [open_button(_, number, appt)]
    if entry.series is not None and appt.series_id is not None:
        upcoming, total = entry.series
        text += " — " + _("series: {upcoming} upcoming of {total} visits").format(upcoming=upcoming, total=total)
        label = _("Show all of #{number}").format(number=number)
        buttons.append(button(label, "cx", appt.client_id, appt.series_id))
    return text, buttons


def found(
    practice: Practice,
    query: str,
    clients: Sequence[ClientRow],
    appts: Sequence[AppointmentRow],
    lang: str,
    *,
    now_index: int = 0,
    limit: int | None = None,
) -> Message:
    """/find: the matching clients' appointments (each opens its card; a series is one line, at its next visit),
    the last `limit` lines of them, and their records."""
    _ = gettext_for(lang)
    if not clients:
        return Message(_("Nobody found for “{query}”.").format(query=escape(query)))
    lines, rows = [_("Found for “{query}”:").format(query=escape(query))], []
    shown = entries(appts, now_index)
    for i, entry in enumerate(shown[-limit:] if limit else shown, 1):
        text, buttons = _entry_rows(_, lang, practice, i, entry)
        lines.append(text)
        rows.append(buttons)
    if not appts:
        lines.append(_("No appointments."))
    rows += [[button(_("Record: {name}").format(name=c.name or ""), "cl", c.id)] for c in clients]
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))


def client_card(
    practice: Practice,
    client: ClientRow,
    appts: Sequence[AppointmentRow],
    notes: Sequence[StaffNoteRow],
    lang: str,
    *,
    now_index: int,
    expand: int | None = None,
    waiting: Sequence[str] = (),
) -> Message:
    """A client record: contact details, every appointment (past and upcoming; a series on one line unless it
    is the one `expand`ed), the client's waiting list, notes and flags."""
    _ = gettext_for(lang)
    lines = [_("<b>Client record</b>"), _contact(client)]
    if client.telegram_id is None:
        lines.append(_("Does not use the bot yet."))
    lines += ["", _("Appointments:") if appts else _("No appointments.")]
    rows = []
    past = True
    for i, entry in enumerate(entries(appts, now_index, expand), 1):
        if entry.upcoming and past and i > 1:
            lines.append(_("— upcoming —"))
        past = not entry.upcoming
        flags = parse_flags(entry.appt.flags)
        marks = f" [{', '.join(flag_label(_, f) for f in sorted(flags))}]" if flags else ""
        text, buttons = _entry_rows(_, lang, practice, i, entry, marks)
        lines.append(text)
        rows.append(buttons)
    if waiting:
        lines += ["", *waiting]
    if notes:
        lines += ["", _("Staff notes:")]
        lines += [f"· {escape(n.text)}" for n in notes]
    return Message("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def colleagues(practice: Practice, appt: AppointmentRow, free: Sequence[str], lang: str) -> Message:
    """Whom the appointment can be handed to: colleagues offering the service who are free then."""
    _ = gettext_for(lang)
    back = [button(_("« Back"), "c", appt.id)]
    if not free:
        return Message(_("No colleague who offers this service is free at that time."), InlineKeyboardMarkup([back]))
    rows = [[button(practice.specialist_by_id[s].name, "rt", appt.id, s)] for s in free]
    text = _("Hand this appointment to whom? They are asked to accept; until then it stays with you.")
    return Message(text, InlineKeyboardMarkup([*rows, back]))


def confirm_delete(appt: AppointmentRow, lang: str) -> Message:
    _ = gettext_for(lang)
    text = _(
        "Delete appointment #{id} for good? Its calendar event is removed and only the history remains. "
        "To call off a visit, cancel it instead."
    ).format(id=appt.id)
    rows = [[button(_("Yes, delete it"), "dely", appt.id), button(_("« Back"), "c", appt.id)]]
    return Message(text, InlineKeyboardMarkup(rows))


def confirm_decline_all(appt: AppointmentRow, client: ClientRow, count: int, lang: str) -> Message:
    _ = gettext_for(lang)
    text = _(
        "Decline every undecided request of {name} ({count} now)? A weekly series goes as a whole. "
        "Each request message is closed and the client is told once."
    ).format(name=escape(client.name or _("Client")), count=count)
    rows = [[button(_("Yes, decline them all"), "dally", appt.id), button(_("« Back"), "c", appt.id)]]
    return Message(text, InlineKeyboardMarkup(rows))


def all_declined(client: ClientRow, count: int, lang: str) -> str:
    _ = gettext_for(lang)
    return _("Declined {count} requests of {name}. The client has been told.").format(
        count=count, name=escape(client.name or _("Client"))
    )


# --- what clients are told -------------------------------------------------------------------------


def all_declined_for_client(practice: Practice, appts: Sequence[AppointmentRow], lang: str) -> str:
    """One message for every request the practice declined at once; a series is named by its first visit."""
    _ = gettext_for(lang)
    firsts = {a.series_id or -a.id: a for a in sorted(appts, key=lambda a: a.start, reverse=True)}
    lines = [_("Sorry, the practice has declined your requests:")]
    for appt in sorted(firsts.values(), key=lambda a: a.start):
        service = escape(local(practice.service_by_id[appt.service_id].name, lang))
        lines.append(f"• {service}, {escape(when(lang, practice, appt.location_id, appt.start))}")
    lines += ["", contact_the_practice(_, lang, practice)]
    return "\n".join(lines)


def proposal_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> Message:
    """A visit the practice booked for the client: accept or decline."""
    _ = gettext_for(lang)
    text = _letter(
        _, lang, practice, appt, _("The practice has booked a visit for you. Does this time suit you?"), how=True
    )
    rows = [
        [
            InlineKeyboardButton(_("Accept"), callback_data=f"p|y|{appt.id}"),
            InlineKeyboardButton(_("Decline"), callback_data=f"p|n|{appt.id}"),
        ]
    ]
    return Message(text, InlineKeyboardMarkup(rows))


def moved_with_reason(practice: Practice, appt: AppointmentRow, lang: str, reason: str | None) -> str:
    _ = gettext_for(lang)
    return _letter(
        _,
        lang,
        practice,
        appt,
        _("The specialist moved your appointment to a new time:"),
        _("Reason: {reason}").format(reason=escape(reason)) if reason else "",
        _("Send /my to see or cancel your appointments."),
    )


def cancelled_with_reason(practice: Practice, appt: AppointmentRow, lang: str, reason: str | None) -> Message:
    """The practice cancelled: the reason, and one button to choose another time with the same specialist."""
    _ = gettext_for(lang)
    text = _letter(
        _,
        lang,
        practice,
        appt,
        _("Sorry, the specialist had to cancel your appointment."),
        _("Reason: {reason}").format(reason=escape(reason)) if reason else "",
    )
    rows = [[InlineKeyboardButton(_("Choose another time"), callback_data=f"b|again|{appt.id}")]]
    return Message(text, InlineKeyboardMarkup(rows))


def reassigned_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    name = practice.specialist_by_id[appt.specialist_id].name
    heading = _("Your appointment will be with {name}:").format(name=escape(name))
    return _letter(_, lang, practice, appt, heading)


# --- what staff are told ---------------------------------------------------------------------------


def proposal_answered(practice: Practice, appt: AppointmentRow, client: ClientRow, lang: str) -> Message:
    _ = gettext_for(lang)
    heading = (
        _("{name} accepted the proposed visit.")
        if appt.status == "confirmed"
        else _("{name} declined the proposed visit; the time is free again.")
    ).format(name=escape(client.name or _("The client")))
    lines = [heading, "", *appointment_facts(_, lang, practice, appt)]
    return Message("\n".join(lines), InlineKeyboardMarkup([[button(_("Open"), "c", appt.id)]]))


def proposal_lapsed(practice: Practice, appt: AppointmentRow, client: ClientRow, lang: str) -> Message:
    _ = gettext_for(lang)
    heading = _("{name} did not answer the proposed visit in time; it has lapsed.").format(
        name=escape(client.name or _("The client"))
    )
    lines = [heading, "", *appointment_facts(_, lang, practice, appt)]
    return Message("\n".join(lines), InlineKeyboardMarkup([[button(_("Open"), "c", appt.id)]]))


def proposal_lapsed_for_client(practice: Practice, appt: AppointmentRow, lang: str) -> str:
    _ = gettext_for(lang)
    return _letter(_, lang, practice, appt, _("The proposed visit has lapsed without an answer."))


def handover_offer(practice: Practice, appt: AppointmentRow, client: ClientRow, lang: str) -> Message:
    """To the colleague: take this appointment over?"""
    _ = gettext_for(lang)
    owner = practice.specialist_by_id[appt.specialist_id].name
    lines = [
        _("{name} asks you to take over this appointment:").format(name=escape(owner)),
        "",
        *appointment_facts(_, lang, practice, appt),
        _("Client: {name}").format(name=escape(client.name or "")),
    ]
    rows = [[button(_("Take over"), "ry", appt.id), button(_("Refuse"), "rn", appt.id)]]
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))


def handover_outcome(practice: Practice, appt: AppointmentRow, lang: str, *, accepted: bool, colleague: str) -> Message:
    """To the specialist who asked: the colleague's answer."""
    _ = gettext_for(lang)
    name = escape(practice.specialist_by_id[colleague].name)
    heading = (
        _("{name} took over the appointment; it has left your calendar.")
        if accepted
        else _("{name} did not take over the appointment; it stays with you.")
    ).format(name=name)
    moment = escape(when(lang, practice, appt.location_id, appt.start))
    return Message(f"{heading}\n{moment}", InlineKeyboardMarkup([[button(_("Open"), "c", appt.id)]]))


def link_question(client: ClientRow, records: Sequence[ClientRow], lang: str) -> Message:
    """To the admins: a new bot user matches several records; which one is them, if any?"""
    _ = gettext_for(lang)
    lines = [
        _("A client who just started the bot matches more than one record, so nothing was linked:"),
        _contact(client),
        "",
        _("Link them to one of these records only if you are sure it is the same person:"),
        *(f"#{r.id}: {_contact(r)}" for r in records),
    ]
    rows = [
        [
            button(_("Open record #{id}").format(id=r.id), "cl", r.id),
            button(_("Link to record #{id}").format(id=r.id), "ln", client.id, r.id),
        ]
        for r in records
    ]
    rows.append([button(_("Keep them apart"), "lk", client.id)])
    return Message("\n".join(lines), InlineKeyboardMarkup(rows))
