"""EventSpec <-> iCalendar text, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar

from caldav_bridge.ical import from_ical, ics_bytes, merge, to_ical
from scheduling.calendar import EventSpec
from tests.fixtures.caldav import event_spec

TEXT = "Zażółć gęślą jaźń; ėįųū, äöå\nsecond line 🎉 \\ backslash"


def spec(**changes: object) -> EventSpec:
    """Text that needs every escape, at 02:30 CEST on the night the clocks go back."""
    base: dict[str, object] = dict(
        uid="u-1@bookingbot",
        start=datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        end=datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        summary=TEXT,
        description=TEXT + "\n\nmore",
        location="ul. Długa 12/4, 80-827 Gdańsk",
        sequence=3,
        appointment_id=9,
    )
    return event_spec(**{**base, **changes})


def test_round_trip_is_exact_across_the_autumn_change() -> None:
    s = spec()
    assert from_ical(to_ical(s)) == s
    # 00:30 UTC on 25 Oct is 02:30 CEST, before the clocks go back at 03:00.
    assert "DTSTART;TZID=Europe/Warsaw:20261025T023000" in to_ical(s)


def test_one_vevent_with_timezone_and_no_attendees() -> None:
    cal = Calendar.from_ical(to_ical(spec(status="CONFIRMED")))
    [ev] = cal.walk("VEVENT")
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Warsaw"]
    assert str(ev["STATUS"]) == "CONFIRMED" and int(ev["SEQUENCE"]) == 3
    assert str(ev["X-BOOKINGBOT-ID"]) == "9" and "DTSTAMP" in ev
    assert "ORGANIZER" not in ev and "ATTENDEE" not in ev


def test_ics_file_is_publish() -> None:
    data = ics_bytes(spec())
    assert b"METHOD:PUBLISH" in data
    assert from_ical(data) == spec()


def test_merge_keeps_their_properties_and_applies_ours() -> None:
    theirs = to_ical(spec()).replace("END:VEVENT", "CATEGORIES:Work\r\nEND:VEVENT")
    merged = merge(theirs, spec(status="CONFIRMED", sequence=4, tzid="Europe/Helsinki"))
    [ev] = Calendar.from_ical(merged).walk("VEVENT")
    assert "CATEGORIES" in ev
    assert from_ical(merged) == spec(status="CONFIRMED", sequence=4, tzid="Europe/Helsinki")
    assert [tz["TZID"] for tz in Calendar.from_ical(merged).walk("VTIMEZONE")] == ["Europe/Helsinki"]


def test_cached_timezones_give_what_icalendar_gives() -> None:
    """serialise() splices each zone's VTIMEZONE in once built; the bytes equal add_missing_timezones'."""
    from caldav_bridge.ical import _object, serialise

    helsinki = spec(uid="u-2@bookingbot", tzid="Europe/Helsinki")
    for parts in ([spec()], [spec(), helsinki], [spec(tzid="America/New_York", summary="x")]):
        cal = _object(parts[0], "PUBLISH")
        for other in parts[1:]:
            cal.subcomponents += [c for c in _object(other).subcomponents if c.name == "VEVENT"]
        ours = serialise(cal)
        cal.add_missing_timezones()
        reference = Calendar.from_ical(cal.to_ical())
        # Several zones may come in another order; each component must be the same.
        assert sorted(c.to_ical() for c in Calendar.from_ical(ours).subcomponents) == sorted(
            c.to_ical() for c in reference.subcomponents
        )
        if len(parts) == 1:
            assert ours == cal.to_ical()
    assert from_ical(to_ical(spec())) == spec()
