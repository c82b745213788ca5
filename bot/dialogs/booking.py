"""The client's booking dialog: one screen per step, edited in place, single-answer steps skipped."""

from __future__ import annotations

import calendar
import functools
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import escape

from babel.dates import format_date
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot import callback
from bot.dialogs import waitlist as waitlist_texts
from bot.dialogs.draft import Draft
from bot.dialogs.render import (
    Gettext,
    appointment_lines,
    channel_label,
    contact_the_practice,
    day_label,
    limit_reached,
    month_grid,
    time_label,
    when,
    zone_note,
)
from bot.i18n import gettext_for
from scheduling.booking import (
    AlreadyDecided,
    BookingService,
    CancellationClosed,
    InvalidRequest,
    NotAllowed,
    Request,
    SlotTaken,
)
from scheduling.calendar import CalendarUnavailable
from scheduling.changes import ChangeService
from scheduling.config import Practice, local
from scheduling.contact import clean_email, clean_name, normalize_phone
from scheduling.limits import LimitReached
from scheduling.model import Channel, Slot, Status
from scheduling.series import SeriesConflicts, SeriesRequest, SeriesService
from scheduling.store import AppointmentRow, ClientRow, QuickTx, Tx
from scheduling.store_privacy import HEALTH, TERMS
from scheduling.waitlist import WaitingList

log = logging.getLogger(__name__)

STEPS = (
    "location",
    "category",
    "service",
    "specialist",
    "day",
    "time",
    "channel",
    "note",
    "contact",
    "consent",
    "summary",
)
# The draft fields each step sets; going back to a step clears its own and every later one's.
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "location": ("location",),
    "category": ("category",),
    "service": ("service",),
    "specialist": ("specialist",),
    "day": ("day",),
    "time": ("start", "assigned", "channels", "part", "repeat", "skip"),
    "channel": ("channel",),
    "note": ("note",),
    "contact": ("contact_stage",),
    "consent": (),
    "summary": (),
}
PARTS = {"m": (0, 12), "a": (12, 17), "e": (17, 24)}  # local hours [from, to)
NOTE_MAX = 1000  # characters of a client's note kept
REPEAT_CHOICES = (4, 8, 12)  # weekly visits a client may ask for at once
MANY_TIMES = 12  # more free times than this in a day: offer the morning / afternoon / evening filter


@dataclass
class Screen:
    """What the dialog shows: a message text with buttons, or a request for the phone number."""

    text: str
    buttons: list[list[InlineKeyboardButton]] = field(default_factory=list)
    ask_contact: bool = False  # show Telegram's "share my number" keyboard in a new message
    done: bool = False  # the dialog ended: forget the draft
    booked: AppointmentRow | None = None  # the request this screen confirms was sent

    @property
    def markup(self) -> InlineKeyboardMarkup | None:
        return InlineKeyboardMarkup(self.buttons) if self.buttons else None


@dataclass
class Ctx:
    """What one step needs: the practice rules, the client and the chosen language."""

    practice: Practice
    booking: BookingService
    draft: Draft
    client: ClientRow
    # The day's free times as a refused request just read them: the time picker shows them without reading again.
    day_slots: list[Slot] | None = None

    @property
    def _(self) -> Gettext:
        return gettext_for(self.draft.lang)


class Forged(Exception):
    """Callback data that no screen of ours could have produced."""


@functools.lru_cache(maxsize=4096)
def _button(label: str, *parts: str) -> InlineKeyboardButton:
    # Buttons are immutable and the same few hundred recur on every client's screens (a month picker has ~45):
    # built once each, not per render.
    return InlineKeyboardButton(label, callback_data="|".join(("b", *parts)))


def _nav(c: Ctx) -> list[InlineKeyboardButton]:
    """Back (when an earlier screen was shown) and Cancel."""
    _ = c._
    back = any(step != c.draft.step for step in c.draft.history)
    return [*([_button(_("« Back"), "back")] if back else []), _button(_("Cancel"), "cancel")]


def _grid(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


# --- what can be chosen at each step ------------------------------------------------------------------


def locations(p: Practice) -> list[str]:
    return [loc.id for loc in p.locations if any(p.specialists_for(s.id, loc.id) for s in p.services)]


def categories(p: Practice, location: str) -> list[int]:
    names = p.categories()
    return [i for i, c in enumerate(names) if services(p, location, i)]


def services(p: Practice, location: str, category: int) -> list[str]:
    name = p.categories()[category]
    return [s.id for s in p.services if s.category == name and p.specialists_for(s.id, location)]


def specialists(p: Practice, d: Draft) -> list[str]:
    assert d.service and d.location
    return [s.id for s in p.specialists_for(d.service, d.location)]


def candidates(p: Practice, d: Draft) -> list[str]:
    """The specialists whose time the day and time pickers show ("first available": never one who declined)."""
    if d.specialist == "*":
        return [s for s in specialists(p, d) if s not in d.avoid]
    return [d.specialist or ""]


# --- screens ------------------------------------------------------------------------------------------


def _header(c: Ctx) -> str:
    """What has been chosen so far, above every screen after the service."""
    d, _ = c.draft, c._
    if not (d.service and d.location):
        return ""
    lines = []
    if d.moving is not None and d.moving_from:
        old = when(d.lang, c.practice, d.location, datetime.fromisoformat(d.moving_from))
        lines.append(_("Moving your appointment of {when}").format(when=escape(old)))
    lines += appointment_lines(
        _,
        d.lang,
        c.practice,
        service_id=d.service,
        location_id=d.location,
        specialist_id=d.assigned or (d.specialist if d.specialist != "*" else None),
        start=datetime.fromisoformat(d.start) if d.start else None,
        channel=d.channel,
    )
    instructions = c.practice.service_by_id[d.service].instructions_for(d.channel)
    if instructions and d.step in ("specialist", "day"):
        lines.append(f"<i>{escape(local(instructions, d.lang))}</i>")
    return "\n".join(lines) + "\n\n"


def _with_notice(c: Ctx, text: str) -> str:
    notice = c.draft.notice
    c.draft.notice = None
    return f"<b>{escape(notice)}</b>\n\n{text}" if notice else text


def _question(c: Ctx, question: str) -> str:
    """A contact question, or instead the refusal of the last answer (which asks again itself)."""
    refusal, c.draft.notice = c.draft.notice, None
    return escape(refusal) if refusal else question


async def screen_location(c: Ctx) -> Screen | str:
    ids = locations(c.practice)
    if len(ids) == 1:
        return ids[0]
    buttons = [[_button(local(c.practice.location_by_id[i].name, c.draft.lang), "pick", i)] for i in ids]
    return Screen(c._("Where would you like to meet?"), [*buttons, _nav(c)])


async def screen_category(c: Ctx) -> Screen | str:
    assert c.draft.location
    idx = categories(c.practice, c.draft.location)
    if len(idx) == 1:
        return str(idx[0])
    names = c.practice.categories()
    buttons = [[_button(local(names[i], c.draft.lang), "pick", str(i))] for i in idx]
    return Screen(c._("What is it about?"), [*buttons, _nav(c)])


async def screen_service(c: Ctx) -> Screen | str:
    assert c.draft.location and c.draft.category is not None
    ids = services(c.practice, c.draft.location, c.draft.category)
    if len(ids) == 1:
        return ids[0]
    rows = []
    for i in ids:
        s = c.practice.service_by_id[i]
        label = c._("{name} · {minutes} min").format(name=local(s.name, c.draft.lang), minutes=s.duration)
        label += f" · {local(s.price, c.draft.lang)}" if s.price else ""
        rows.append([_button(label, "pick", i)])
    return Screen(c._("Which service?"), [*rows, _nav(c)])


async def screen_specialist(c: Ctx) -> Screen | str:
    ids = specialists(c.practice, c.draft)
    if len(ids) == 1:
        return ids[0]
    async with c.booking.store.quick() as q:
        previous = await q.last_specialist(c.client.id)
    ids.sort(key=lambda i: i != previous)  # a returning client sees their specialist first
    rows = [[_button(c._("First available"), "pick", "*")]]
    rows += [[_button(c.practice.specialist_by_id[i].name, "pick", i)] for i in ids]
    return Screen(_header(c) + c._("Who would you like to see?"), [*rows, _nav(c)])


def _today(c: Ctx) -> date:
    assert c.draft.location
    return c.booking.today(c.draft.location)


def _last_day(c: Ctx) -> date:
    assert c.draft.location
    return c.booking.last_day(c.draft.location, candidates(c.practice, c.draft))


def _unavailable(c: Ctx) -> Screen:
    return Screen(
        c._("The calendar cannot be read right now, so no times can be offered. Please try again in a few minutes."),
        [[_button(c._("Try again"), "retry")], _nav(c)],
    )


async def screen_day(c: Ctx) -> Screen | str:
    d, _ = c.draft, c._
    assert d.service and d.location
    today, last = _today(c), _last_day(c)
    try:
        ahead = None
        if d.month is None:
            # Open on the first month that has a free day, not on an empty one.
            ahead = await c.booking.month_days(d.service, d.location, candidates(c.practice, d), today, last)
            d.month = (min(ahead) if ahead else today).isoformat()[:7]
        month = date.fromisoformat(d.month + "-01")
        last_of_month = month.replace(day=calendar.monthrange(month.year, month.month)[1])
        first, end = max(month, today), min(last_of_month, last)
        if ahead is not None:
            # The month's days are among those just read (each day's slots are its own): not read again.
            free = {day for day in ahead if first <= day <= end}
        else:
            free = await c.booking.month_days(d.service, d.location, candidates(c.practice, d), first, end)
    except CalendarUnavailable:
        return _unavailable(c)

    def cell(day: date) -> InlineKeyboardButton:
        if day in free:
            return _button(str(day.day), "day", day.isoformat())
        return _button("·", "noop", "day")

    rows = month_grid(d.lang, month, first_month=today.replace(day=1), last=last, button=_button, cell=cell)
    text = _("Choose a day; days with free times show their date.") if free else _("No free times this month.")
    if d.moving is None and await _may_wait(c):
        rows.append([_button(_("Tell me if a time frees up this month"), "wait")])
    return Screen(_with_notice(c, _header(c) + text), [*rows, _nav(c)])


async def _may_wait(c: Ctx) -> bool:
    """The waiting list books straight away when a time is taken, so it needs the details a request needs."""
    if not (c.client.name and c.client.phone):
        return False
    async with c.booking.store.quick() as q:
        return TERMS in await q.consents_in_force(c.client.id, c.practice.practice.policy_version)


def _month_range(c: Ctx) -> tuple[date, date]:
    """The days of the month the day picker shows that can still be booked."""
    assert c.draft.month
    month = date.fromisoformat(c.draft.month + "-01")
    last_of_month = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    return max(month, _today(c)), min(last_of_month, _last_day(c))


def _group(c: Ctx) -> bool:
    """Whether the chosen service is a group session (clients book a seat)."""
    service = c.practice.service_by_id.get(c.draft.service or "")
    return service is not None and service.seats > 1


def _merged(slots: list[Slot]) -> dict[datetime, list[Slot]]:
    by_start: dict[datetime, list[Slot]] = {}
    for s in slots:
        by_start.setdefault(s.start, []).append(s)
    return by_start


async def _day_slots(c: Ctx) -> list[Slot]:
    if c.day_slots is not None:
        return c.day_slots
    d = c.draft
    assert d.service and d.location and d.day
    return await c.booking.day_slots(d.service, d.location, candidates(c.practice, d), date.fromisoformat(d.day))


async def screen_time(c: Ctx) -> Screen | str:
    d, _ = c.draft, c._
    assert d.location and d.day
    try:
        slots = await _day_slots(c)
    except CalendarUnavailable:
        return _unavailable(c)
    starts = sorted(_merged(slots))
    zone = c.practice.zone(d.location)
    rows: list[list[InlineKeyboardButton]] = []
    by_part = {key: [s for s in starts if low <= s.astimezone(zone).hour < high] for key, (low, high) in PARTS.items()}
    if d.part and not by_part[d.part]:
        d.part = None  # the part's last time was taken meanwhile: show the whole day again
    if len(starts) > MANY_TIMES and sum(1 for part in by_part.values() if part) > 1:
        # Only the parts of the day that have times are offered.
        labels = (("m", _("Morning")), ("a", _("Afternoon")), ("e", _("Evening")))
        rows.append(
            [_button(("✓ " if d.part == key else "") + label, "part", key) for key, label in labels if by_part[key]]
        )
        if d.part:
            starts = by_part[d.part]
    group = c.practice.service_by_id[d.service or ""].seats > 1
    left = _seats_left(slots) if group else {}
    times = [_button(_time_text(c, s, left.get(s)), "time", str(int(s.timestamp()) // 60)) for s in starts]
    # A group session's times carry their free seats: fewer fit on a row.
    rows += _grid(times, 3 if group else 4)
    day = day_label(d.lang, date.fromisoformat(d.day))
    if starts:
        text = _("Free times on {day}:").format(day=day)
        if group:
            seats = c.practice.service_by_id[d.service or ""].seats
            text += "\n" + _("A group session of up to {seats} participants: each time shows its free places.").format(
                seats=seats
            )
    else:
        text = _("No free times left on {day}. Please choose another day.").format(day=day)
    note = zone_note(_, c.practice, d.location)
    return Screen(_with_notice(c, _header(c) + text + (f"\n{note}" if note else "")), [*rows, _nav(c)])


def _seats_left(slots: list[Slot]) -> dict[datetime, int]:
    """Free seats per start of a group service (the most any one specialist has then)."""
    left: dict[datetime, int] = {}
    for s in slots:
        if s.seats_left is not None:
            left[s.start] = max(left.get(s.start, 0), s.seats_left)
    return left


def _time_text(c: Ctx, start: datetime, seats_left: int | None) -> str:
    assert c.draft.location
    label = time_label(c.draft.lang, c.practice, c.draft.location, start)
    if seats_left is None:
        return label
    return c._("{time} · {count} free").format(time=label, count=seats_left)


async def screen_channel(c: Ctx) -> Screen | str:
    if len(c.draft.channels) == 1:
        return c.draft.channels[0]
    buttons = [[_button(channel_label(c._, ch), "pick", ch)] for ch in c.draft.channels]
    return Screen(_header(c) + c._("How would you like to meet?"), [*buttons, _nav(c)])


async def screen_note(c: Ctx) -> Screen | str:
    text = c._("Anything the specialist should know beforehand? Type a short note, or tap Skip.")
    # The first screen that asks for anything personal says what happens to it, before it is typed.
    notice = c._(
        "Privacy: what you type from here on is used only to arrange your appointments. It is kept only "
        "once you agree to the privacy policy; if you cancel before that, nothing of it is kept."
    )
    return Screen(_header(c) + text + f"\n\n<i>{escape(notice)}</i>", [[_button(c._("Skip"), "skip")], _nav(c)])


async def screen_contact(c: Ctx) -> Screen | str:
    d, cl, _ = c.draft, c.client, c._
    # Arriving here, a notice is about an earlier step (a shortened note); later it is a refusal.
    ask = _with_notice if d.contact_stage is None else _question
    if d.contact_stage is None:
        if cl.name and cl.phone:
            return "known"
        d.contact_stage = "name"
    if d.contact_stage == "name":
        return Screen(ask(c, _("Please type your first and last name.")), [_nav(c)])
    if d.contact_stage == "phone":
        text = _("Please share your phone number with the button below, or type it.")
        return Screen(ask(c, text), [_nav(c)], ask_contact=True)
    text = _("Your e-mail address (optional): type it, or tap Skip.")
    return Screen(ask(c, text), [[_button(_("Skip"), "skip")], _nav(c)])


async def _consents_needed(c: Ctx, tx: Tx | QuickTx) -> tuple[bool, bool]:
    """Whether the client still has to accept the terms, and (for a note) the processing of health information."""
    given = await tx.consents_in_force(c.client.id, c.practice.practice.policy_version)
    return TERMS not in given, bool(c.draft.note) and HEALTH not in given


async def _keep_details(c: Ctx, tx: Tx) -> None:
    """The client agreed: the contact details they typed go from the draft to their record."""
    if c.draft.pending:
        c.client = await tx.upsert_client(c.client.telegram_id, **c.draft.pending)  # type: ignore[arg-type]
        c.draft.pending = {}


async def screen_consent(c: Ctx) -> Screen | str:
    info = c.practice.practice
    async with c.booking.store.quick() as q:
        terms, health = await _consents_needed(c, q)
    if not terms and not health:
        if c.draft.pending:
            async with c.booking.store.tx() as tx:
                await _keep_details(c, tx)
        return "given"
    parts = []
    if terms:
        parts.append(
            c._(
                "Before sending the request, please accept the terms of service ({terms}) and the privacy policy "
                "({privacy}). Your details are used only to arrange your appointments."
            ).format(terms=escape(info.terms_url), privacy=escape(info.privacy_url))
        )
    if health:
        parts.append(
            c._(
                "Your note may contain information about your health. It is shown only to the practice's staff, "
                "never written to calendars, and you may withdraw this consent at any time. Agreeing includes "
                "the processing of the health information in your note."
            )
        )
    rows = [[_button(c._("I agree"), "agree")]]
    if health:
        rows.append([_button(c._("Send without my note"), "nonote")])
    return Screen(_with_notice(c, "\n\n".join(parts)), [*rows, _nav(c)])


async def _agree(c: Ctx, *, note: bool) -> None:
    """Record the consents the screen asked for, each on its own with the policy version, and keep the details."""
    version, now = c.practice.practice.policy_version, c.booking.clock()
    async with c.booking.store.tx() as tx:
        # Asked again in the transaction that records them: a consent is recorded once, whatever came meanwhile.
        terms, health = await _consents_needed(c, tx)
        if terms:
            await tx.record_consent(c.client.id, version, now, TERMS)
        if health and note:
            await tx.record_consent(c.client.id, version, now, HEALTH)
        await _keep_details(c, tx)
    if not note:
        c.draft.note = ""
    c.draft.step = "summary"


async def screen_summary(c: Ctx) -> Screen | str:
    d, cl, _ = c.draft, c.client, c._
    if d.moving is not None:
        lines = [_("Please check the new time:"), "", _header(c).rstrip()]
        rows = [[_button(_("Ask to move it"), "send")], _nav(c)]
        return Screen(_with_notice(c, "\n".join(lines)), rows)
    lines = [_("Please check your request:"), "", _header(c).rstrip()]
    if d.note:
        lines.append(_("Note: {note}").format(note=escape(d.note)))
    contact = ", ".join(escape(x) for x in (cl.name, cl.phone, cl.email) if x)
    lines.append(_("Your details: {contact}").format(contact=contact))
    if d.repeat:
        lines.append(_("Repeats: every week at this time, {count} visits").format(count=d.repeat))
        if d.skip:
            zone = c.practice.zone(d.location or "")
            left_out = ", ".join(
                format_date(datetime.fromisoformat(s).astimezone(zone).date(), "d MMM", locale=d.lang) for s in d.skip
            )
            lines.append(_("Taken, so left out: {dates}").format(dates=escape(left_out)))
    repeat = _("Repeat every week") if not d.repeat else _("Weekly: {count} visits (change)").format(count=d.repeat)
    if _group(c) and not d.repeat:
        repeat = _("Join every week from this date")  # a seat in each week's session of the group
    rows = [
        [_button(_("Send request"), "send")],
        [_button(repeat, "repeat")],
        [_button(_("Change my details"), "edit")],
        _nav(c),
    ]
    return Screen(_with_notice(c, "\n".join(lines)), rows)


SCREENS = {
    "location": screen_location,
    "category": screen_category,
    "service": screen_service,
    "specialist": screen_specialist,
    "day": screen_day,
    "time": screen_time,
    "channel": screen_channel,
    "note": screen_note,
    "contact": screen_contact,
    "consent": screen_consent,
    "summary": screen_summary,
}


def _choose(d: Draft, step: str, value: str) -> None:
    """Store a single-answer step's value (picked or automatic)."""
    if step == "category":
        d.category = int(value)
    elif step in ("location", "service", "specialist", "channel"):
        setattr(d, step, value)


def _next(d: Draft, step: str) -> str:
    if d.moving is not None and step == "channel":
        return "summary"  # a move keeps the note, the details and the consent of the visit
    return STEPS[STEPS.index(step) + 1]


async def render(c: Ctx) -> Screen:
    """The screen for the draft's step, skipping (and filling in) steps with a single answer."""
    while True:
        step = c.draft.step
        result = await SCREENS[step](c)
        if isinstance(result, Screen):
            if not c.draft.history or c.draft.history[-1] != step:
                c.draft.history.append(step)
            return result
        _choose(c.draft, step, result)
        c.draft.step = _next(c.draft, step)


def go_back(d: Draft) -> None:
    """Return to the previous step the client actually saw, forgetting what was chosen since."""
    if d.step == "contact" and d.contact_stage in ("phone", "email"):
        d.contact_stage = next(stage for stage, (then, _) in _AFTER.items() if then == d.contact_stage)
        return
    if d.history and d.history[-1] == d.step:
        d.history.pop()
    if not d.history:
        return
    target = d.history[-1]
    for step in STEPS[STEPS.index(target) :]:
        for name in STEP_FIELDS[step]:
            setattr(d, name, [] if name == "channels" else None)
    d.step = target


def begin(
    d: Draft,
    *,
    location: str | None = None,
    service: str | None = None,
    specialist: str | None = None,
    practice: Practice,
) -> None:
    """Start a fresh dialog, optionally with a deep link's or a declined request's choices made."""
    d.active, d.step, d.history = True, "location", []
    if location in practice.location_by_id:
        d.location, d.step = location, "category"
        if service in practice.service_by_id and service in services(
            practice, location, practice.categories().index(practice.service_by_id[service].category)
        ):
            d.category = practice.categories().index(practice.service_by_id[service].category)
            d.service, d.step = service, "specialist"
            if specialist in [s.id for s in practice.specialists_for(service, location)]:
                d.specialist, d.step = specialist, "day"


def begin_move(d: Draft, appt: AppointmentRow, *, practice: Practice) -> None:
    """Start the day and time pickers for moving a visit: same service and place, same specialist or any."""
    begin(
        d,
        location=appt.location_id,
        service=appt.service_id,
        specialist=None if appt.first_available else appt.specialist_id,
        practice=practice,
    )
    if appt.first_available and d.step == "specialist":
        d.specialist, d.step = "*", "day"
    d.moving, d.moving_from = appt.id, appt.start.isoformat()
    d.note = appt.note or ""


async def on_button(c: Ctx, verb: str, arg: str) -> Screen:
    """Apply one tap of the dialog's buttons and return the next screen; raise Forged for impossible data."""
    d, p = c.draft, c.practice
    if verb == "back":
        go_back(d)
    elif verb == "retry":
        pass
    elif verb == "pick":
        if d.step == "location" and arg in locations(p):
            d.location = arg
        elif d.step == "category" and d.location and callback.number(arg) in categories(p, d.location):
            d.category = callback.number(arg)
        elif (
            d.step == "service" and d.location and d.category is not None and arg in services(p, d.location, d.category)
        ):
            d.service = arg
        elif d.step == "specialist" and (arg == "*" or arg in specialists(p, d)):
            d.specialist = arg
        elif d.step == "channel" and arg in d.channels:
            d.channel = arg
        else:
            raise Forged(verb)
        d.step = _next(d, d.step)
    elif verb == "month" and d.step == "day":
        try:
            month = date.fromisoformat(arg + "-01")
        except ValueError:
            raise Forged(verb) from None
        if not (_today(c).replace(day=1) <= month <= _last_day(c)):
            raise Forged(verb)
        d.month = arg
    elif verb == "day" and d.step == "day":
        try:
            day = date.fromisoformat(arg)
        except ValueError:
            raise Forged(verb) from None
        if not _today(c) <= day <= _last_day(c):
            raise Forged(verb)
        d.day, d.part, d.step = arg, None, "time"
    elif verb == "wait" and d.step == "day" and d.month and d.moving is None and await _may_wait(c):
        assert d.service and d.location
        first, last = _month_range(c)
        await WaitingList(c.booking).join(
            c.client.id,
            service_id=d.service,
            location_id=d.location,
            specialist_id=None if d.specialist == "*" else d.specialist,
            first_day=first,
            last_day=last,
            only_new=True,
        )
        return Screen(waitlist_texts.joined(d.lang, first, last), done=True)
    elif verb == "part" and d.step == "time" and arg in PARTS:
        # A part with no times is never offered; a tap on one (stale or forged) just shows the whole day.
        d.part = None if d.part == arg else arg
    elif verb == "time" and d.step == "time" and (minutes := callback.number(arg)) is not None:
        await _pick_time(c, datetime.fromtimestamp(minutes * 60, UTC))
    elif verb == "skip" and d.step == "note":
        d.note, d.step = "", "contact"
    elif verb == "skip" and d.step == "contact" and d.contact_stage == "email":
        d.contact_stage, d.step = None, "consent"
    elif verb == "agree" and d.step == "consent":
        await _agree(c, note=True)
    elif verb == "nonote" and d.step == "consent" and d.note:
        await _agree(c, note=False)
    elif verb == "edit" and d.step == "summary":
        d.step, d.contact_stage = "contact", "name"
    elif verb == "repeat" and d.step == "summary" and d.moving is None:
        choices = [None, *REPEAT_CHOICES]
        d.repeat = choices[(choices.index(d.repeat) + 1) % len(choices)] if d.repeat in choices else None
        d.skip = None
    elif verb == "send" and d.step == "summary":
        if d.repeat:
            return await _send_series(c)
        return await _send(c)
    else:
        raise Forged(verb)
    return await render(c)


async def _pick_time(c: Ctx, start: datetime) -> None:
    d = c.draft
    try:
        at_start = _merged(await _day_slots(c)).get(start)
    except CalendarUnavailable:
        at_start = None
    if not at_start:
        d.notice = c._("Sorry, this time was just taken. Here are the remaining times.")
        return
    slot = await c.booking.assign(at_start, c.client.id)
    d.start, d.assigned, d.channels = start.isoformat(), slot.specialist_id, [str(ch) for ch in slot.channels]
    d.step = "channel"


async def _send(c: Ctx) -> Screen:
    d = c.draft
    assert d.service and d.location and d.assigned and d.start and d.channel
    try:
        if d.moving is not None:
            appt = await ChangeService(c.booking).request_move(
                d.moving,
                c.client.id,
                specialist_id=d.assigned,
                start=datetime.fromisoformat(d.start),
                channel=Channel(d.channel),
            )
        else:
            appt = await c.booking.request(
                Request(
                    client_id=c.client.id,
                    service_id=d.service,
                    location_id=d.location,
                    specialist_id=d.assigned,
                    channel=Channel(d.channel),
                    start=datetime.fromisoformat(d.start),
                    note=d.note or "",
                    source=d.source,
                    first_available=d.specialist == "*",
                )
            )
    except LimitReached as exc:
        # Nothing was sent; the summary stays, so the client can send it once the limit allows.
        d.notice = limit_reached(c._, exc)
        return await render(c)
    except (CancellationClosed, AlreadyDecided, NotAllowed):
        # The visit can no longer be moved here (the deadline passed, or it was cancelled meanwhile).
        text = c._("This appointment can no longer be moved here.")
        return Screen(text + "\n\n" + contact_the_practice(c._, d.lang, c.practice), done=True)
    except SlotTaken as exc:
        if candidates(c.practice, d) == [d.assigned]:
            # One specialist: the refusal's remaining times are exactly the time picker's (not "first available").
            c.day_slots = exc.remaining
        d.step = "time"
        for name in STEP_FIELDS["time"] + STEP_FIELDS["channel"]:
            setattr(d, name, [] if name == "channels" else None)
        d.history = d.history[: d.history.index("time") + 1] if "time" in d.history else d.history
        d.notice = c._("Sorry, this time was just taken. Here are the remaining times.")
        return await render(c)
    except InvalidRequest as exc:
        log.info("request refused: %s", exc)
        d.step, d.day = "day", None
        d.notice = c._("This time can no longer be booked. Please choose again.")
        return await render(c)
    if d.moving is not None:
        text = c._(
            "Your request to move the appointment has been sent. Until the specialist approves it, "
            "your appointment stays at its present time."
        )
    elif appt.status == Status.CONFIRMED:
        text = c._("Your place is booked. The confirmation follows in a moment.")
    else:
        text = c._("Your request has been sent. The specialist will reply soon; I will let you know here.")
    return Screen(_header(c) + text, done=True, booked=appt)


async def _send_series(c: Ctx) -> Screen:
    """The same time every week: one request for the whole series, approved or declined as a whole."""
    d = c.draft
    assert d.service and d.location and d.assigned and d.start and d.channel and d.repeat
    req = SeriesRequest(
        client_id=c.client.id,
        service_id=d.service,
        location_id=d.location,
        specialist_id=d.assigned,
        channel=Channel(d.channel),
        start=datetime.fromisoformat(d.start),
        count=d.repeat,
        note=d.note or "",
    )
    skip = [datetime.fromisoformat(s) for s in d.skip or []]
    try:
        _series, rows = await SeriesService(c.booking).create(
            req, actor=f"client:{c.client.id}", confirmed=False, skip=skip
        )
    except LimitReached as exc:
        d.notice = limit_reached(c._, exc)
        return await render(c)
    except SeriesConflicts as exc:
        if exc.skippable and exc.conflicts[0].start != req.start:
            # Some later weeks are taken: say which, and send the rest on the next tap.
            d.skip = [x.start.isoformat() for x in exc.conflicts]
            return await render(c)
        d.step, d.day, d.repeat, d.skip = "day", None, None, None
        d.notice = c._("This time can no longer be booked. Please choose again.")
        return await render(c)
    except (InvalidRequest, CalendarUnavailable) as exc:
        log.info("series request refused: %s", type(exc).__name__)
        d.step, d.day, d.repeat, d.skip = "day", None, None, None
        d.notice = c._("This time can no longer be booked. Please choose again.")
        return await render(c)
    if rows[0].status == Status.CONFIRMED:
        text = c._("Your places are booked. The confirmation follows in a moment.")
    else:
        text = c._(
            "Your request for {count} weekly visits has been sent. The specialist will reply soon; "
            "I will let you know here."
        ).format(count=len(rows))
    return Screen(_header(c) + text, done=True, booked=rows[0])


async def on_text(c: Ctx, text: str) -> Screen | None:
    """Typed text while the dialog waits for a note or contact details; None if it waits for no text."""
    d, _ = c.draft, c._
    if d.step == "note":
        note = text.strip()
        if len(note) > NOTE_MAX:
            d.notice = _("Your note was longer than {limit} characters, so only its beginning was kept.").format(
                limit=NOTE_MAX
            )
        d.note, d.step = note[:NOTE_MAX], "contact"
    elif d.step == "contact" and d.contact_stage == "name":
        bad_name = _("That does not look like a name. Please type your first and last name.")
        await _remember(c, "name", clean_name(text), bad_name)
    elif d.step == "contact" and d.contact_stage == "phone":
        return await on_phone(c, text)
    elif d.step == "contact" and d.contact_stage == "email":
        bad_email = _("That does not look like an e-mail address. Please type it again, or tap Skip.")
        await _remember(c, "email", clean_email(text), bad_email)
    else:
        return None
    return await render(c)


async def on_phone(c: Ctx, raw: str) -> Screen:
    """A typed or shared phone number."""
    bad_phone = c._("That does not look like a phone number. Please include the country code, e.g. +48 601 234 567.")
    await _remember(c, "phone", normalize_phone(raw, c.practice.practice.country), bad_phone)
    return await render(c)


# After each contact detail, the next question: (stage, step).
_AFTER = {"name": ("phone", "contact"), "phone": ("email", "contact"), "email": (None, "consent")}


async def _remember(c: Ctx, field: str, value: str | None, refusal: str) -> None:
    """Save a validated contact detail on the client and move to the next question, or show why not."""
    if value is None:
        c.draft.notice = refusal
        return
    if c.draft.pending:
        # Details are held already, so the policy was not agreed to: this one waits with them (no query needed).
        c.draft.pending[field] = value
    else:
        async with c.booking.store.tx() as tx:
            if await tx.has_consent(c.client.id, c.practice.practice.policy_version, TERMS):
                c.client = await tx.upsert_client(c.client.telegram_id, **{field: value})  # type: ignore[arg-type]
            else:
                # Not agreed to the privacy policy yet: held in the draft only (a cancel forgets it).
                c.draft.pending[field] = value
    c.draft.contact_stage, c.draft.step = _AFTER[field]


def contact_keyboard(_: Gettext) -> ReplyKeyboardMarkup:
    """Telegram's own "share my number" button."""
    return ReplyKeyboardMarkup(
        [[KeyboardButton(_("Share my phone number"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
