"""How an appointment reads in the specialist's calendar and in the client's own .ics file."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.dialogs.render import Gettext, channel_label, visit_link
from bot.i18n import gettext_for
from scheduling.calendar import EventSpec, OverrideSpec, RecurrenceSpec
from scheduling.config import CalendarDetail, Practice, local
from scheduling.db import GroupRow
from scheduling.model import IN_CALENDAR, PENDING_STATUSES, Status
from scheduling.privacy import calendar_detail, client_shown
from scheduling.series import series_layout, shown
from scheduling.store import AppointmentRow, ClientRow
from scheduling.store_series import SeriesRow


def event_for(
    practice: Practice, appt: AppointmentRow, client: ClientRow | None, detail: CalendarDetail | None = None
) -> EventSpec:
    """The calendar event for an appointment, in the practice's language.

    It says of the client only what the privacy setting allows (`detail`; default: the specialist's
    calendar setting), so by default the service and the client's initials.
    """
    _ = gettext_for(practice.practice.language)
    service = practice.service_by_id[appt.service_id]
    location = practice.location_by_id[appt.location_id]
    level = detail or calendar_detail(practice, appt.specialist_id)
    seen = client_shown(
        level,
        name=client.name if client else None,
        phone=client.phone if client else None,
        email=client.email if client else None,
        note=appt.note,
    )
    who = seen.who or _("Client")
    link = visit_link(practice, appt)
    lines = [
        _("Service: {name} ({minutes} min)").format(name=service.name, minutes=service.duration),
        _("How: {channel}").format(channel=channel_label(_, appt.channel)),
    ]
    if link:
        lines.append(_("Video link: {url}").format(url=link))
    if client is not None and level == "full":
        lines += [_("Client: {name}").format(name=who), _("Phone: {phone}").format(phone=seen.phone or "")]
        if seen.email:
            lines.append(_("E-mail: {email}").format(email=seen.email))
    if seen.note:
        lines.append(_("Note: {note}").format(note=seen.note))
    if level != "full":
        lines.append(_("The client's details are in Telegram (/agenda)."))
    if appt.status == Status.REQUESTED:
        lines.append(_("Waiting for your approval in Telegram."))
    elif appt.status == Status.PROPOSED:
        lines.append(_("Proposed to the client, waiting for their answer in Telegram."))
    title = service.name
    partner = practice.partner_by_id.get(appt.partner_booking.partner_id) if appt.partner_booking else None
    if partner is not None:
        # The partner's label tells the specialist whose rules and settlement the visit falls under.
        title = partner.label
        lines.insert(0, _("Booked by {partner}").format(partner=partner.name))
    return EventSpec(
        uid=appt.uid,
        start=appt.start,
        end=appt.end,
        tzid=practice.zone(appt.location_id).key,
        summary=f"{title}: {who}",
        description="\n".join(lines),
        location=link or location.address or location.name,
        status="TENTATIVE" if appt.status in PENDING_STATUSES else "CONFIRMED",
        sequence=appt.sequence,
        appointment_id=appt.id,
        url=link,
    )


def client_event_for(practice: Practice, appt: AppointmentRow, lang: str) -> EventSpec:
    """The event for the client's own calendar, in their language: the visit, never the client's own details.

    Same UID as the specialist's event, so an update or a cancellation replaces the imported copy.
    """
    _ = gettext_for(lang)
    service = local(practice.service_by_id[appt.service_id].name, lang)
    spec = practice.specialist_by_id[appt.specialist_id]
    location = practice.location_by_id[appt.location_id]
    address = local(location.address or location.name, lang)
    link = visit_link(practice, appt)
    lines = [
        local(practice.practice.name, lang),
        _("Specialist: {name}").format(name=spec.name),
        _("How: {channel}").format(channel=channel_label(_, appt.channel)),
    ]
    if link:
        lines.append(_("Video link: {url}").format(url=link))
    instructions = practice.service_by_id[appt.service_id].instructions_for(appt.channel)
    if instructions:
        lines.append(local(instructions, lang))
    return EventSpec(
        uid=appt.uid,
        start=appt.start,
        end=appt.end,
        tzid=practice.zone(appt.location_id).key,
        summary=_("{service} with {specialist}").format(service=service, specialist=spec.name),
        description="\n".join(lines),
        location=link or (address if appt.channel == "on_site" else local(practice.practice.name, lang)),
        status="TENTATIVE" if appt.status == Status.REQUESTED else "CONFIRMED",
        sequence=appt.sequence,
        appointment_id=0,
        url=link,
    )


def _as_series(
    base: EventSpec, series: SeriesRow, rows: list[AppointmentRow], *, client_side: bool
) -> EventSpec | None:
    """`base` (the texts of one visit) as the series' recurring event: RRULE, EXDATE, overrides; None: none left."""
    plan = series_layout(series, rows)
    if plan is None:
        return None
    status = "TENTATIVE" if plan.tentative else "CONFIRMED"
    return replace(
        base,
        uid=series.uid,
        start=series.first_start,
        end=series.first_start + timedelta(minutes=series.duration_minutes),
        status=status,
        sequence=series.sequence,
        appointment_id=0 if client_side else min(r.id for r in rows),
        recurrence=RecurrenceSpec(
            interval_weeks=series.interval_weeks,
            count=series.count,
            until=series.until,
            exdates=plan.exdates,
            overrides=tuple(
                OverrideSpec(o.recurrence_id, o.start, o.end, "TENTATIVE" if o.tentative else "CONFIRMED")
                for o in plan.overrides
            ),
        ),
    )


def _model_row(series: SeriesRow, rows: list[AppointmentRow]) -> AppointmentRow | None:
    """The visit that reads like the rule (its status is the master's), whose texts the series' event takes."""
    plan = series_layout(series, rows)
    if plan is None:
        return None
    visible = {o.recurrence_id for o in shown(rows)}
    return next(r for r in rows if r.recurrence_id in visible and (r.status == Status.REQUESTED) == plan.tentative)


def series_event_for(
    practice: Practice, series: SeriesRow, rows: list[AppointmentRow], detail: CalendarDetail | None = None
) -> EventSpec | None:
    """The recurring event of a series (RRULE, EXDATE, overrides), or None when none of its visits is left."""
    model = _model_row(series, rows)
    if model is None:
        return None
    return _as_series(event_for(practice, model, series.client, detail), series, rows, client_side=False)


def client_series_event_for(
    practice: Practice, series: SeriesRow, rows: list[AppointmentRow], lang: str
) -> EventSpec | None:
    """The series for the client's own calendar, in their language: the visits, never the client's own details.

    Same UID as the specialist's resource, so a later file replaces the imported copy; None when no visit is left.
    """
    model = _model_row(series, rows)
    if model is None:
        return None
    return _as_series(client_event_for(practice, model, lang), series, rows, client_side=True)


def client_series_cancel_for(practice: Practice, series: SeriesRow, rows: list[AppointmentRow], lang: str) -> EventSpec:
    """A series none of whose visits is left, for a METHOD:CANCEL file: its UID and rule, the client's texts."""
    base = client_event_for(practice, rows[0], lang)
    return replace(
        base,
        uid=series.uid,
        start=series.first_start,
        end=series.first_start + timedelta(minutes=series.duration_minutes),
        status="CONFIRMED",
        sequence=series.sequence,
        recurrence=RecurrenceSpec(series.interval_weeks, series.count, series.until),
    )


def _participant(_: Gettext, seat: AppointmentRow, detail: CalendarDetail) -> str:
    """One participant of a group session as the privacy setting lets the calendar show a client."""
    seen = client_shown(detail, name=seat.client.name, phone=seat.client.phone, email=seat.client.email, note=seat.note)
    parts = [seen.who or _("Client")]
    if seen.phone:
        parts.append(_("Phone: {phone}").format(phone=seen.phone))
    if seen.email:
        parts.append(_("E-mail: {email}").format(email=seen.email))
    if seen.note:
        parts.append(_("Note: {note}").format(note=seen.note))
    if seat.status == Status.REQUESTED:
        parts.append(_("waiting for your approval in Telegram"))
    return "- " + "; ".join(parts)


def group_event_for(
    practice: Practice, group: GroupRow, seats: list[AppointmentRow], detail: CalendarDetail | None = None
) -> EventSpec | None:
    """The one event of a group session, listing its participants; None when no seat is left in the calendar.

    Each participant shows what the privacy setting allows of a client (by default their initials); the title
    names nobody. Confirmed once any seat is.
    """
    present = [s for s in seats if Status(s.status) in IN_CALENDAR]
    if not present:
        return None
    _ = gettext_for(practice.practice.language)
    level = detail or calendar_detail(practice, group.specialist_id)
    service = practice.service_by_id[group.service_id]
    base = event_for(practice, present[0], None, level)
    lines = [
        _("Service: {name} ({minutes} min)").format(name=service.name, minutes=service.duration),
        _("How: {channel}").format(channel=channel_label(_, present[0].channel)),
    ]
    if base.url:
        lines.append(_("Video link: {url}").format(url=base.url))
    lines.append(_("Participants: {taken} of {seats}").format(taken=len(present), seats=service.seats))
    lines += [_participant(_, seat, level) for seat in present]
    if level != "full":
        lines.append(_("The client's details are in Telegram (/agenda)."))
    confirmed = any(s.status not in PENDING_STATUSES for s in present)
    return replace(
        base,
        uid=group.uid,
        start=group.start,
        end=group.end,
        summary=_("{service}: group of {taken}").format(service=service.name, taken=len(present)),
        description="\n".join(lines),
        status="CONFIRMED" if confirmed else "TENTATIVE",
        # Rises with every change to any seat (a new seat, a decision, a cancellation): seats are never removed.
        sequence=sum(s.sequence for s in seats) + len(seats),
        appointment_id=min(s.id for s in seats),
    )
