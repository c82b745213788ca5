"""Busy time from a published calendar: read on an interval, conditional, kept when broken, never a false free."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import pytest_asyncio

from caldav_bridge.gateway import CalDAVGateway
from providers.feeds import BusyFeeds
from providers.router import CalendarRouter
from scheduling.booking import BookingService
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Practice, parse_practice
from scheduling.store import Store
from tests.fixtures.caldav import CalDAVServer, account_of, practice_for
from tests.fixtures.feeds import FeedServer, vcalendar

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # Friday; Ana works Mondays 09:00-17:00 in Warsaw
MONDAY = date(2026, 12, 7)
DENTIST = "UID:dentist\r\nSUMMARY:Dentist\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z"  # 10:00-11:00 local


def with_feeds(base: Practice, *feeds: Any, minutes: float = 5) -> Practice:
    data = base.model_dump(mode="json", exclude_none=True)
    data["practice"]["busy_feed_minutes"] = minutes
    data["specialists"][0]["busy_feeds"] = list(feeds)
    return parse_practice(data)


def starts(slots) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.start.astimezone(UTC).strftime("%H:%M") for s in slots]


@pytest_asyncio.fixture
async def booking(
    radicale_account: CalDAVServer, sqlite_store: Store, feed_server: FeedServer, request: pytest.FixtureRequest
) -> AsyncIterator[BookingService]:
    """A booking service whose specialist has a CalDAV calendar and the test's busy feed."""
    os.environ["BOOKINGBOT_TEST_CALDAV_PASSWORD"] = radicale_account.password
    minutes = getattr(request, "param", 5)
    practice = with_feeds(practice_for(radicale_account), feed_server.url, minutes=minutes)
    gateway = CalDAVGateway(practice, accounts={"ana": account_of(radicale_account)}, clock=lambda: NOW)
    await gateway.start()
    feeds = BusyFeeds(practice, clock=lambda: NOW)
    try:
        yield BookingService(practice, sqlite_store, CalendarRouter(gateway, feeds), clock=lambda: NOW)
    finally:
        await feeds.close()
        await gateway.close()


def feeds_of(service: BookingService) -> BusyFeeds:
    assert isinstance(service.calendar, CalendarRouter)
    return service.calendar.feeds


@pytest.mark.parametrize("booking", [0.002], indirect=True)  # a refresh interval of 0.12 s
async def test_an_event_added_to_the_feed_blocks_its_time_within_the_interval(
    booking: BookingService, feed_server: FeedServer
) -> None:
    assert "09:00" in starts(await booking.day_slots("first", "centre", ["ana"], MONDAY))
    feed_server.text = vcalendar(DENTIST)
    await asyncio.sleep(0.2)
    await feeds_of(booking).refresh_due()  # what the background loop does every tick
    offered = starts(await booking.day_slots("first", "centre", ["ana"], MONDAY))
    assert "09:00" not in offered and "08:30" not in offered  # 09:30 local would run into the dentist
    assert "10:00" in offered


async def test_an_unchanged_feed_costs_no_parsing(booking: BookingService, feed_server: FeedServer) -> None:
    feed_server.text = vcalendar(DENTIST)
    feeds = feeds_of(booking)
    await booking.day_slots("first", "centre", ["ana"], MONDAY)
    state = feeds.feeds["ana"][0]
    assert state.parses == 1
    await feeds.load("ana", state)
    assert feed_server.not_modified == 1 and state.parses == 1
    assert "09:00" not in starts(await booking.day_slots("first", "centre", ["ana"], MONDAY))


async def test_a_broken_feed_keeps_its_last_copy(booking: BookingService, feed_server: FeedServer) -> None:
    feed_server.text = vcalendar(DENTIST)
    feeds = feeds_of(booking)
    await booking.day_slots("first", "centre", ["ana"], MONDAY)
    feed_server.status = 500
    await feeds.load("ana", feeds.feeds["ana"][0])
    assert "09:00" not in starts(await booking.day_slots("first", "centre", ["ana"], MONDAY))
    [row] = feeds.status()["ana"]
    assert row["state"] == "stale" and "500" in row["error"]
    assert "secret" not in str(feeds.status())  # the address is a password: only its host is shown


async def test_a_feed_never_read_closes_the_specialists_days(booking: BookingService, feed_server: FeedServer) -> None:
    feed_server.status = 500
    with pytest.raises(CalendarUnavailable):
        await booking.month_days("first", "centre", ["ana"], MONDAY, date(2026, 12, 31))
    assert feeds_of(booking).status()["ana"][0]["state"] == "never read"
    feed_server.status = 200
    with pytest.raises(CalendarUnavailable):  # still backing off: no request per screen to a failing server
        await booking.day_slots("first", "centre", ["ana"], MONDAY)
    assert feed_server.requests == 1


async def test_the_feed_is_read_again_at_commit_when_older_than_a_minute(
    booking: BookingService, feed_server: FeedServer
) -> None:
    feeds = feeds_of(booking)
    await booking.day_slots("first", "centre", ["ana"], MONDAY)
    feed_server.text = vcalendar(DENTIST)
    state = feeds.feeds["ana"][0]
    assert state.checked is not None
    state.checked -= 61
    start, end = datetime(2026, 12, 7, 8, 0, tzinfo=UTC), datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert [b.label for b in await booking.calendar.busy("ana", start, end, fresh=True)] == ["Dentist"]


async def test_feeds_read_recurrences_all_day_transparency_and_windows_zones(feed_server: FeedServer) -> None:
    feed_server.text = vcalendar(
        # Outlook names zones the Windows way and may leave out the VTIMEZONE.
        "UID:w\r\nDTSTART;TZID=W. Europe Standard Time:20261207T090000\r\n"
        "DTEND;TZID=W. Europe Standard Time:20261207T093000\r\nSUMMARY:Team",
        "UID:r\r\nDTSTART:20261207T130000Z\r\nDTEND:20261207T140000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"
        "EXDATE:20261214T130000Z\r\nSUMMARY:Weekly",
        "UID:d\r\nDTSTART;VALUE=DATE:20261209\r\nDTEND;VALUE=DATE:20261210\r\nSUMMARY:Conference",
        "UID:t\r\nDTSTART:20261207T150000Z\r\nDTEND:20261207T160000Z\r\nTRANSP:TRANSPARENT\r\nSUMMARY:Reminder",
    )
    practice = with_feeds(_practice(), feed_server.url)
    feeds = BusyFeeds(practice, clock=lambda: NOW)
    try:
        busy = await feeds.busy("ana", datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
    finally:
        await feeds.close()
    got = [(b.label, b.start.isoformat(), b.end.isoformat()) for b in busy]
    assert got == [
        ("Team", "2026-12-07T08:00:00+00:00", "2026-12-07T08:30:00+00:00"),
        ("Weekly", "2026-12-07T13:00:00+00:00", "2026-12-07T14:00:00+00:00"),
        ("Conference", "2026-12-08T23:00:00+00:00", "2026-12-09T23:00:00+00:00"),  # the whole day in Warsaw
        ("Weekly", "2026-12-21T13:00:00+00:00", "2026-12-21T14:00:00+00:00"),
    ]


async def test_a_secret_address_comes_from_the_environment(feed_server: FeedServer) -> None:
    feed_server.text = vcalendar(DENTIST)
    os.environ["BOOKINGBOT_TEST_FEED_URL"] = feed_server.url
    practice = with_feeds(_practice(), {"url_env": "BOOKINGBOT_TEST_FEED_URL"})
    feeds = BusyFeeds(practice, clock=lambda: NOW)
    try:
        busy = await feeds.busy("ana", datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC))
        assert [b.label for b in busy] == ["Dentist"]
        assert feeds.status()["ana"][0]["feed"] == "$BOOKINGBOT_TEST_FEED_URL"
    finally:
        await feeds.close()
        del os.environ["BOOKINGBOT_TEST_FEED_URL"]


def _practice() -> Practice:
    return parse_practice(
        {
            "practice": {"name": "Test practice", "timezone": "Europe/Warsaw"},
            "locations": [{"id": "centre", "name": "Centre"}],
            "services": [{"id": "first", "name": "First", "duration": 50}],
            "specialists": [{"id": "ana", "name": "Ana", "services": ["first"]}],
        }
    )

