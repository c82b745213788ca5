"""Busy times read from real servers: recurrences, all-day across DST, floating, free and broken events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from caldav_bridge.busy import busy_of
from caldav_bridge.gateway import CalDAVGateway
from tests.fixtures.caldav import CalDAVServer, account_of, practice_for, put_raw

WAW = ZoneInfo("Europe/Warsaw")
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=WAW).astimezone(UTC)  # type: ignore[misc]


def vcal(*events: str) -> str:
    body = "".join(f"BEGIN:VEVENT\r\nDTSTAMP:20260101T000000Z\r\n{e}END:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n"


@pytest.fixture
async def gateway(caldav_server: CalDAVServer) -> AsyncIterator[CalDAVGateway]:
    gw = CalDAVGateway(practice_for(caldav_server), accounts={"ana": account_of(caldav_server)}, clock=lambda: NOW)
    await gw.start()
    yield gw
    await gw.close()


async def test_recurring_series_with_exdate_rdate_and_moved_occurrence(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    # Daily 10:00-11:00 Warsaw time from Fri 27 March for 5 days, crossing the DST change on 29 March.
    series = vcal(
        "UID:series-1\r\nSUMMARY:Supervision\r\n"
        "DTSTART;TZID=Europe/Warsaw:20260327T100000\r\nDTEND;TZID=Europe/Warsaw:20260327T110000\r\n"
        "RRULE:FREQ=DAILY;COUNT=5\r\n"
        "EXDATE;TZID=Europe/Warsaw:20260328T100000\r\n"
        "RDATE;TZID=Europe/Warsaw:20260405T150000\r\n",
        "UID:series-1\r\nSUMMARY:Supervision (moved)\r\n"
        "RECURRENCE-ID;TZID=Europe/Warsaw:20260330T100000\r\n"
        "DTSTART;TZID=Europe/Warsaw:20260330T140000\r\nDTEND;TZID=Europe/Warsaw:20260330T153000\r\n",
    )
    put_raw(caldav_server, "series-1.ics", series)
    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True)
    assert [(b.start, b.end, b.label) for b in busy] == [
        (local(2026, 3, 27, 10), local(2026, 3, 27, 11), "Supervision"),
        (local(2026, 3, 29, 10), local(2026, 3, 29, 11), "Supervision"),
        (local(2026, 3, 30, 14), local(2026, 3, 30, 15, 30), "Supervision (moved)"),
        (local(2026, 3, 31, 10), local(2026, 3, 31, 11), "Supervision"),
        (local(2026, 4, 5, 15), local(2026, 4, 5, 16), "Supervision"),
    ]
    assert {b.uid for b in busy} == {"series-1"}
    # 29 March is already summer time: 10:00 Warsaw is 08:00 UTC, the day before 09:00 UTC.
    assert busy[1].start.hour == 8 and busy[0].start.hour == 9


async def test_all_day_events_block_whole_days_across_dst(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    put_raw(
        caldav_server,
        "trip.ics",
        vcal("UID:trip\r\nSUMMARY:Trip\r\nDTSTART;VALUE=DATE:20260328\r\nDTEND;VALUE=DATE:20260330\r\n"),
    )
    put_raw(caldav_server, "autumn.ics", vcal("UID:autumn\r\nSUMMARY:Off\r\nDTSTART;VALUE=DATE:20261025\r\n"))
    busy = await gateway.busy("ana", NOW, datetime(2026, 11, 1, tzinfo=UTC), fresh=True)
    spans = {b.uid: (b.start, b.end) for b in busy}
    assert spans["trip"] == (local(2026, 3, 28), local(2026, 3, 30))
    assert spans["trip"][1] - spans["trip"][0] == timedelta(hours=47)  # the short night of 29 March
    assert spans["autumn"] == (local(2026, 10, 25), local(2026, 10, 26))
    assert spans["autumn"][1] - spans["autumn"][0] == timedelta(hours=25)


async def test_floating_times_are_read_in_the_specialists_zone(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    put_raw(
        caldav_server,
        "float.ics",
        vcal("UID:float\r\nSUMMARY:Gym\r\nDTSTART:20260401T070000\r\nDTEND:20260401T080000\r\n"),
    )
    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True)
    assert [(b.start, b.end) for b in busy] == [(local(2026, 4, 1, 7), local(2026, 4, 1, 8))]
    assert busy[0].start == datetime(2026, 4, 1, 5, 0, tzinfo=UTC)


async def test_transparent_and_cancelled_are_free(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    put_raw(
        caldav_server,
        "transp.ics",
        vcal("UID:transp\r\nTRANSP:TRANSPARENT\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\n"),
    )
    put_raw(
        caldav_server,
        "cancel.ics",
        vcal("UID:cancel\r\nSTATUS:CANCELLED\r\nDTSTART:20260402T070000Z\r\nDTEND:20260402T080000Z\r\n"),
    )
    put_raw(
        caldav_server,
        "weekly.ics",
        vcal(
            "UID:weekly\r\nSUMMARY:Team\r\nDTSTART:20260401T120000Z\r\nDTEND:20260401T130000Z\r\n"
            "RRULE:FREQ=WEEKLY;COUNT=2\r\n",
            "UID:weekly\r\nSTATUS:CANCELLED\r\nRECURRENCE-ID:20260408T120000Z\r\n"
            "DTSTART:20260408T120000Z\r\nDTEND:20260408T130000Z\r\n",
        ),
    )
    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True)
    assert [(b.uid, b.start) for b in busy] == [("weekly", datetime(2026, 4, 1, 12, tzinfo=UTC))]


def test_unparsable_object_counts_busy_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    broken = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nSUMMARY:Secret therapy note\r\n"
        "DTSTART;TZID=Europe/Warsaw:20260401T100000\r\nDTEND:garbage\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    reported: set[str] = set()
    start, end = NOW, NOW + timedelta(days=30)
    with caplog.at_level(logging.WARNING, logger="caldav_bridge.busy"):
        first = busy_of([("/ana/cal/broken.ics", broken)], start, end, WAW, reported)
        second = busy_of([("/ana/cal/broken.ics", broken)], start, end, WAW, reported)
    assert first == second
    assert [(b.start, b.end) for b in first] == [(local(2026, 4, 1, 10), local(2026, 4, 2, 10))]
    records = [r for r in caplog.records if "broken.ics" in r.getMessage()]
    assert len(records) == 1
    assert "Secret" not in caplog.text


def test_unreadable_without_dtstart_gives_nothing_to_place() -> None:
    assert busy_of([("/x.ics", "not a calendar at all")], NOW, NOW + timedelta(days=1), WAW, set()) == []


async def test_an_endless_minutely_event_is_not_expanded_and_its_span_counts_busy(
    radicale_account: CalDAVServer,
) -> None:
    """FREQ=MINUTELY without an end would expand to ~45,000 occurrences over a month: capped per object.

    Radicale only: Xandikos expands such an event itself while filtering and does not answer in time.
    """
    caldav_server = radicale_account
    gateway = CalDAVGateway(practice_for(caldav_server), accounts={"ana": account_of(caldav_server)}, clock=lambda: NOW)
    await gateway.start()
    put_raw(
        caldav_server,
        "spam.ics",
        vcal(
            "UID:spam\r\nSUMMARY:Every minute\r\nDTSTART:20260319T000000Z\r\nDTEND:20260319T000030Z\r\n"
            "RRULE:FREQ=MINUTELY\r\n"
        ),
    )
    put_raw(
        caldav_server,
        "hourly.ics",  # 24 a day for a week: expanded as usual
        vcal(
            "UID:hourly\r\nSUMMARY:Hourly\r\nDTSTART:20260323T000000Z\r\nDTEND:20260323T001000Z\r\n"
            "RRULE:FREQ=HOURLY;COUNT=168\r\n"
        ),
    )
    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True)
    spam = [b for b in busy if b.uid == "spam"]
    assert len(spam) == 1 and spam[0].end - spam[0].start >= timedelta(days=30)
    assert len([b for b in busy if b.uid == "hourly"]) == 168
    await gateway.close()


async def test_one_object_with_a_character_xml_forbids_never_hides_the_others(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    """Another app stored U+FFFE in a description; the server echoes it into the REPORT's XML."""
    put_raw(
        caldav_server,
        "bad.ics",
        vcal(
            "UID:bad\r\nSUMMARY:Broken\r\nDESCRIPTION:before\ufffeafter\r\n"
            "DTSTART:20260323T090000Z\r\nDTEND:20260323T100000Z\r\n"
        ),
    )
    put_raw(
        caldav_server,
        "good.ics",
        vcal("UID:good\r\nSUMMARY:Fine\r\nDTSTART:20260324T090000Z\r\nDTEND:20260324T100000Z\r\n"),
    )
    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True)
    assert {(b.uid, b.start) for b in busy} == {
        ("bad", datetime(2026, 3, 23, 9, tzinfo=UTC)),
        ("good", datetime(2026, 3, 24, 9, tzinfo=UTC)),
    }


VTZ = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Warsaw\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)
# Plain events the quick reader takes, and objects it must leave to icalendar; both readers must agree on all.
QUICK = [
    vcal("UID:a\r\nSUMMARY:Dentist\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\n"),
    vcal(
        "UID:b\r\nSUMMARY:A, b; c: d %3A é\r\nDTSTART;TZID=Europe/Warsaw:20260329T013000\r\n"
        "DTEND;TZID=Europe/Warsaw:20260329T033000\r\n"
    ),
    vcal("UID:c\r\nSUMMARY:Long line fol\r\n ded here\r\nDTSTART;VALUE=DATE:20260328\r\nDTEND;VALUE=DATE:20260330\r\n"),
    vcal("UID:d\r\nDTSTART:20260401T070000\r\nDTEND:20260401T080000\r\nTRANSP:TRANSPARENT\r\n"),
    vcal("UID:e\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\nSTATUS:CANCELLED\r\n"),
    vcal(
        "UID:f\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\nSTATUS:TENTATIVE\r\nTRANSP:OPAQUE\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:x\r\nEND:VALARM\r\n"
    ),
    vcal(
        "UID:g\r\nSUMMARY;LANGUAGE=pl:Wizyta: kontrolna\r\nDTSTART;TZID=America/New_York:20260401T070000\r\n"
        "DTEND;TZID=America/New_York:20260401T080000\r\n"
    ).replace("PRODID:-//test//EN\r\n", f"PRODID:x\r\n{VTZ}"),
    vcal("UID:h\r\nDTSTART:20250101T070000Z\r\nDTEND:20250101T080000Z\r\n"),  # outside the range
    vcal("UID:i\r\nDTSTART;TZID=Europe/Warsaw:20260319T230000\r\nDTEND;TZID=Europe/Warsaw:20260320T103000\r\n"),
]
FULL = [
    vcal("UID:r\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"),
    vcal("UID:s\r\nDTSTART:20260401T070000Z\r\nDURATION:PT1H\r\n"),
    vcal("UID:t\r\nDTSTART:20260401T070000Z\r\n"),
    vcal("UID:u\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T070000Z\r\n"),
    vcal(
        "UID:v\r\nDTSTART;TZID=W. Europe Standard Time:20260401T070000\r\nDTEND;TZID=W. Europe Standard Time:"
        "20260401T080000\r\n"
    ),
    vcal('UID:w\r\nDTSTART;TZID="Europe/Warsaw":20260401T070000\r\nDTEND:20260401T080000Z\r\n'),
    vcal("UID:x\r\nDTSTART;VALUE=DATE:20260401\r\nDTEND:20260402T080000Z\r\n"),
    vcal(
        "UID:y\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\n",
        "UID:y2\r\nDTSTART:20260402T070000Z\r\nDTEND:20260402T080000Z\r\n",
    ),
    vcal("UID:z\r\nDTSTART:20260401T070000Z\r\nDTEND:garbage\r\n"),
    vcal("UID:z2\r\nDTSTART:20260401T070000Z \r\nDTEND:20260401T080000Z\r\n"),
    vcal("UID:z3\r\nSUMMARY:A\\, b\\; c\\\\n\\Nd\r\nDTSTART:20260401T070000Z\r\nDTEND:20260401T080000Z\r\n"),
    "not a calendar at all",
]


@pytest.mark.parametrize("text", QUICK + FULL)
def test_the_quick_reader_agrees_with_icalendar(text: str) -> None:
    from caldav_bridge.busy import _quick, parse_full

    start, end = NOW, NOW + timedelta(days=30)
    quick = _quick(text, start, end, WAW)
    assert (quick is not None) == (text in QUICK)
    if quick is not None:
        assert quick == parse_full(text, start, end, WAW)
