"""Localised text for appointments, slots and dates, shared by every dialog (HTML parse mode)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, datetime, timedelta
from html import escape

from babel.dates import format_date, format_time, get_day_names
from telegram import InlineKeyboardButton

from scheduling.config import Practice, local
from scheduling.limits import Limit, LimitReached
from scheduling.meeting import video_link
from scheduling.model import Channel, Status
from scheduling.store import AppointmentRow

Gettext = Callable[[str], str]


def channel_label(_: Gettext, channel: str) -> str:
    return {
        Channel.ON_SITE: _("On site"),
        Channel.VIDEO: _("Video call"),
        Channel.PHONE: _("Phone call"),
        Channel.CHAT: _("Chat"),
    }[Channel(channel)]


def status_label(_: Gettext, status: str) -> str:
    return {
        Status.REQUESTED: _("waiting for the specialist"),
        Status.PROPOSED: _("proposed, waiting for the client"),
        Status.CONFIRMED: _("confirmed"),
        Status.DECLINED: _("declined"),
        Status.EXPIRED: _("expired without an answer"),
        Status.CANCELLED: _("cancelled"),
        Status.COMPLETED: _("completed"),
        Status.NO_SHOW: _("client did not come"),
        Status.MOVED: _("moved as asked"),
        Status.DELETED: _("deleted"),
    }[Status(status)]


def visit_link(practice: Practice, appt: AppointmentRow) -> str:
    """The appointment's video room ("" unless a video visit with a link configured)."""
    # The seats of a group session share one room: the session's.
    uid = appt.group.uid if appt.group_id is not None and appt.group is not None else appt.uid
    return video_link(
        practice, specialist_id=appt.specialist_id, location_id=appt.location_id, uid=uid, channel=appt.channel
    )


def channel_instructions(_: Gettext, lang: str, practice: Practice, appt: AppointmentRow) -> str:
    """What the client should expect for the visit's channel: the address, the video link, the call, the chat."""
    if appt.channel == Channel.ON_SITE:
        loc = practice.location_by_id[appt.location_id]
        return _("Address: {address}").format(address=escape(local(loc.address or loc.name, lang)))
    if appt.channel == Channel.VIDEO:
        link = visit_link(practice, appt)
        if link:
            return _("Video link: {url}").format(url=escape(link))
        return _("The specialist will send you the video link here before the appointment.")
    if appt.channel == Channel.PHONE:
        phone = appt.client.phone if appt.client is not None else None
        if phone:
            return _("The specialist will call you at the number you gave: {phone}").format(phone=escape(phone))
        return _("The specialist will call you at the number you gave.")
    return _(
        "At the appointment's time, write here: your messages go to the specialist and their replies come back here."
    )


def when(lang: str, practice: Practice, location_id: str, start: datetime, *, with_zone: bool = False) -> str:
    """'Thursday, 3 December 2026, 09:00' in the location's zone, optionally naming the zone."""
    zone = practice.zone(location_id)
    local = start.astimezone(zone)
    text = f"{format_date(local.date(), 'full', locale=lang)}, {format_time(local.time(), 'HH:mm', locale=lang)}"
    return f"{text} ({zone.key})" if with_zone else text


def day_label(lang: str, day: date) -> str:
    """The full local form of a date ('Thursday, 3 December 2026', 'Donnerstag, 3. Dezember 2026')."""
    return format_date(day, "full", locale=lang)


def time_label(lang: str, practice: Practice, location_id: str, start: datetime) -> str:
    return format_time(start.astimezone(practice.zone(location_id)).time(), "HH:mm", locale=lang)


def zone_note(_: Gettext, practice: Practice, location_id: str) -> str:
    """Name the zone when it may differ from the client's: online visits, or a zone unlike the practice's."""
    loc = practice.location_by_id[location_id]
    zone = practice.zone(location_id).key
    if loc.kind == "online" or zone != practice.practice.timezone:
        return _("Times are in the {zone} time zone.").format(zone=zone)
    return ""


def appointment_lines(
    _: Gettext,
    lang: str,
    practice: Practice,
    *,
    service_id: str,
    location_id: str,
    specialist_id: str | None,
    start: datetime | None,
    channel: str | None,
) -> list[str]:
    """The facts of an appointment (or of a draft, as far as chosen) as labelled lines."""
    service = practice.service_by_id[service_id]
    name = local(service.name, lang)
    lines = [_("Service: {name} ({minutes} min)").format(name=escape(name), minutes=service.duration)]
    if service.price:
        lines.append(_("Price: {price}").format(price=escape(local(service.price, lang))))
    location = local(practice.location_by_id[location_id].name, lang)
    lines.append(_("Location: {name}").format(name=escape(location)))
    if specialist_id:
        spec = practice.specialist_by_id[specialist_id]
        lines.append(_("Specialist: {name}").format(name=escape(spec.name)))
    if start is not None:
        lines.append(_("When: {when}").format(when=when(lang, practice, location_id, start, with_zone=True)))
    if channel:
        lines.append(_("How: {channel}").format(channel=channel_label(_, channel)))
    return lines


def appointment_facts(_: Gettext, lang: str, practice: Practice, appt: AppointmentRow) -> list[str]:
    """A stored appointment's facts as labelled lines."""
    return appointment_lines(
        _,
        lang,
        practice,
        service_id=appt.service_id,
        location_id=appt.location_id,
        specialist_id=appt.specialist_id,
        start=appt.start,
        channel=appt.channel,
    )


def practice_contact(_: Gettext, lang: str, practice: Practice) -> str:
    """How to reach the practice (phone, e-mail, address), for every "please contact the practice"."""
    info = practice.practice
    lines = [_("{practice}:").format(practice=escape(local(info.name, lang)))]
    if info.phone:
        lines.append(_("Phone: {phone}").format(phone=escape(info.phone)))
    if info.email:
        lines.append(_("E-mail: {email}").format(email=escape(info.email)))
    if info.address:
        lines.append(_("Address: {address}").format(address=escape(local(info.address, lang))))
    return "\n".join(lines)


def contact_the_practice(_: Gettext, lang: str, practice: Practice) -> str:
    """ "Please contact the practice", followed by how."""
    return _("Please contact the practice.") + "\n" + practice_contact(_, lang, practice)


def limit_reached(_: Gettext, exc: LimitReached) -> str:
    """Why a client's request was not sent: which of the practice's limits it would pass (plain text)."""
    if exc.limit == Limit.PENDING:
        return _(
            "You already have as many requests waiting for an answer as the practice takes at once ({count}). "
            "Please wait for the specialist's answer, or withdraw a request in /my, then send this one."
        ).format(count=exc.allowed)
    if exc.limit == Limit.DAY:
        return _(
            "You have sent as many requests in the last 24 hours as the practice takes ({count}). "
            "Please send this one later."
        ).format(count=exc.allowed)
    return _("You are sending requests very fast. Please wait a minute, then send this one again.")


def month_grid(
    lang: str,
    month: date,
    *,
    first_month: date,
    last: date,
    button: Callable[..., InlineKeyboardButton],
    cell: Callable[[date], InlineKeyboardButton],
) -> list[list[InlineKeyboardButton]]:
    """A month's day picker: ‹ title › (only towards months in [first_month, last]), weekdays, one cell per day."""
    prev_month = (month - timedelta(days=1)).replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    title = format_date(month, "LLLL yyyy", locale=lang).capitalize()
    head = [
        button("‹", "month", prev_month.isoformat()[:7]) if prev_month >= first_month else button(" ", "noop"),
        button(title, "noop"),
        button("›", "month", next_month.isoformat()[:7]) if next_month <= last else button(" ", "noop"),
    ]
    names = get_day_names("short", locale=lang)
    rows = [head, [button(names[i], "noop") for i in range(7)]]
    for week in calendar.Calendar().monthdatescalendar(month.year, month.month):
        rows.append([cell(day) if day.month == month.month else button(" ", "noop") for day in week])
    return rows
