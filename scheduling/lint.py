"""What in a valid practice file still breaks a practice: findings for `bookingbot check` and `run`.

The practice file's own validation (scheduling.config) refuses what cannot be read at all. These are
the mistakes that load fine and then fail quietly: a specialist nobody can approve for, hours no client
can ever book, a public holiday offered as a working day. Each finding names the field by the item's id
(`specialists[anna].schedule[3].end`), so the fix is found without counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from scheduling.config import DateException, Practice, Specialist, Window
from scheduling.model import Channel

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Finding:
    """`never` when it can never work as configured; otherwise it is suspicious."""

    field: str
    message: str
    never: bool = True


def unapprovable(practice: Practice) -> list[Specialist]:
    """Specialists whose requests nobody can approve: no telegram_id of their own and no practice admin."""
    if practice.practice.admins:
        return []
    return [s for s in practice.specialists if not s.telegram_id]


def _reminders(practice: Practice) -> list[Finding]:
    return [
        Finding(f"practice.reminder_hours[{i}]", f"{hours:g}: a reminder goes out before the visit; use hours above 0")
        for i, hours in enumerate(practice.practice.reminder_hours)
        if hours <= 0
    ]


def _window(w: Window | DateException) -> str:
    assert w.start is not None and w.end is not None
    return f"{w.start:%H:%M}-{w.end:%H:%M}"


def _schedule(practice: Practice, spec: Specialist) -> list[Finding]:
    where = f"specialists[{spec.id}]"
    found: list[Finding] = []
    if not spec.schedule and not any(e.kind == "extra" for e in spec.exceptions):
        found.append(
            Finding(f"{where}.schedule", "no weekly hours and no extra hours: clients can never book them", never=False)
        )
    if spec.min_notice_hours > spec.horizon_days * 24:
        found.append(
            Finding(
                f"{where}.min_notice_hours",
                f"{spec.min_notice_hours:g} h of notice is more than the {spec.horizon_days}-day horizon "
                "(horizon_days): no time can ever be booked",
            )
        )
    for k, later in enumerate(spec.schedule):
        for j, earlier in enumerate(spec.schedule[:k]):
            if later.weekday == earlier.weekday and later.start < earlier.end and earlier.start < later.end:
                found.append(
                    Finding(
                        f"{where}.schedule[{k}]",
                        f"{later.weekday} {_window(later)} overlaps schedule[{j}] ({_window(earlier)}): "
                        "a booking in one also takes the other",
                        never=False,
                    )
                )
    items: list[tuple[str, Window | DateException]] = [(f"schedule[{j}]", w) for j, w in enumerate(spec.schedule)]
    items += [(f"exceptions[{j}]", e) for j, e in enumerate(spec.exceptions)]
    for name, item in items:
        location = practice.location_by_id.get(item.location or "")
        if location is not None and location.kind == "online" and Channel.ON_SITE in (item.channels or []):
            found.append(
                Finding(
                    f"{where}.{name}.channels",
                    f"on_site at {location.id!r}, an online location: nobody can come there; use video, phone or chat",
                )
            )
    return found


def _unknown_country(practice: Practice) -> list[Finding]:
    """A country whose public holidays are not known: nothing is checked against them."""
    country = practice.practice.country
    if not country:
        return []
    import holidays  # see _holidays

    if country in holidays.list_supported_countries():
        return []
    return [
        Finding(
            "practice.country",
            f"no public holidays are known for {country}: working days are not checked against them; list the "
            "practice's closed days as [[specialists.exceptions]]",
            never=False,
        )
    ]


def _holidays(practice: Practice, spec: Specialist, today: date) -> list[Finding]:
    """Public holidays within the specialist's horizon that their weekly hours offer as working days."""
    country = practice.practice.country
    if not country or not spec.schedule:
        return []
    # Imported here: the holidays package costs a running bot (which only needs `unapprovable`) 3 MB.
    import holidays

    if country not in holidays.list_supported_countries():
        return []  # _unknown_country says so once
    last = today + timedelta(days=spec.horizon_days)
    calendar = holidays.country_holidays(country, years=range(today.year, last.year + 1))
    working = {w.weekday for w in spec.schedule}
    off = {e.date for e in spec.exceptions if e.kind == "off" and e.start is None}
    return [
        Finding(
            f"specialists[{spec.id}].exceptions",
            f"{day:%Y-%m-%d} ({name}) is a public holiday in {country} but a working day here; if the practice "
            f'is closed, add [[specialists.exceptions]] date = {day:%Y-%m-%d}, kind = "off"',
            never=False,
        )
        for day, name in sorted(calendar.items())
        if today <= day <= last and WEEKDAYS[day.weekday()] in working and day not in off
    ]


def practice_findings(practice: Practice, today: date) -> list[Finding]:
    """Everything suspicious or hopeless in a practice that loaded without errors, in file order."""
    found = _reminders(practice) + _unknown_country(practice)
    for spec in practice.specialists:
        if spec in unapprovable(practice):
            found.append(
                Finding(
                    f"specialists[{spec.id}].telegram_id",
                    "nobody can approve their requests: set it to their Telegram user id (they send /id to "
                    "the bot), or list admins under [practice]",
                )
            )
        found += _schedule(practice, spec)
        found += _holidays(practice, spec, today)
    return found
