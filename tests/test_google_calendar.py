"""Google Calendar through its CalDAV endpoint with OAuth: sign-in, bookings written, busy time read, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from icalendar import Calendar

from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.outbox import OutboxWorker
from providers.connections import Connections
from providers.feeds import BusyFeeds
from providers.google import GoogleCalendars
from providers.oauth import PASTE_REDIRECT, TokenVault, code_from_address, providers_from_env
from providers.router import CalendarRouter
from scheduling.booking import BookingService, Request
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.config import Practice, parse_practice
from scheduling.model import Channel
from scheduling.store import Store
from tests.fixtures.providers import GoogleStandIn

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # Friday; Anna works Mondays 09:00-17:00 in Warsaw
MONDAY = date(2026, 12, 7)
NINE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def practice(kind: str = "google") -> Practice:
    return parse_practice(
        {
            "practice": {"name": "Test practice", "timezone": "Europe/Warsaw"},
            "locations": [{"id": "centre", "name": "Centre"}],
            "services": [{"id": "first", "name": "First", "duration": 50}],
            "specialists": [
                {
                    "id": "anna",
                    "name": "Anna",
                    "services": ["first"],
                    "calendar": kind,
                    "schedule": [{"weekday": "mon", "start": "09:00", "end": "17:00", "location": "centre"}],
                }
            ],
        }
    )


@dataclass
class Setup:
    connections: Connections
    booking: BookingService
    gateway: CalDAVGateway
    revoked: list[str]


@pytest_asyncio.fixture
async def setup(google: GoogleStandIn, sqlite_store: Store) -> AsyncIterator[Setup]:
    p = practice()
    providers = providers_from_env(google.env)
    gateway = CalDAVGateway(p, clock=lambda: NOW)
    await gateway.start()
    revoked: list[str] = []

    async def on_revoked(spec_id: str, provider: str) -> None:
        revoked.append(f"{spec_id}:{provider}")

    connections = Connections(
        p,
        sqlite_store,
        providers,
        TokenVault(TokenVault.new_key()),
        {"google": GoogleCalendars(providers["google"], gateway)},
        clock=lambda: NOW,
        on_revoked=on_revoked,
    )
    router = CalendarRouter(gateway, BusyFeeds(p, clock=lambda: NOW), before=connections.ensure)
    try:
        yield Setup(connections, BookingService(p, sqlite_store, router, clock=lambda: NOW), gateway, revoked)
    finally:
        await router.feeds.close()
        await gateway.close()


async def sign_in(connections: Connections, *, busy_too: bool = True) -> None:
    """What the specialist does: open the link, consent, paste the address, pick the calendars."""
    spec = connections.practice.specialist_by_id["anna"]
    link = await connections.begin(spec, chat_id=1, redirect_uri=PASTE_REDIRECT)
    async with httpx.AsyncClient() as http:
        consent = await http.get(link, follow_redirects=False)
    assert consent.status_code == 302 and consent.headers["location"].startswith(PASTE_REDIRECT)
    code, state = code_from_address(consent.headers["location"])
    row = await connections.complete(state, code)
    assert row.state == "choosing"
    [own, family] = [c["id"] for c in row.calendars["found"]]
    await connections.choose("anna", booking=own)
    if busy_too:
        await connections.choose("anna", toggle=family)
    await connections.finish("anna")


def event(uid: str = "appt-1@bookingbot", status: str = "TENTATIVE") -> EventSpec:
    return EventSpec(uid, NINE, NINE + timedelta(minutes=50), "Europe/Warsaw", "First", "", "Centre", status, 0, 1)  # type: ignore[arg-type]


def stored(google: GoogleStandIn, uid: str) -> Calendar | None:
    own = next(iter(google.calendars))
    r = httpx.get(f"{google.radicale_url(own)}{uid}.ics", auth=google.radicale_auth)
    return Calendar.from_ical(r.text) if r.status_code == 200 else None


async def test_sign_in_then_bookings_are_written_and_busy_time_read(setup: Setup, google: GoogleStandIn) -> None:
    with pytest.raises(CalendarUnavailable):  # not signed in: no free times rather than all free
        await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)
    await sign_in(setup.connections)
    status = (await setup.connections.status())["anna"]
    assert status["state"] == "connected" and status["account"].startswith("anna-") and status["busy"] == ["Family"]

    family = list(google.calendars)[1]
    async with httpx.AsyncClient(auth=google.radicale_auth) as http:
        put = await http.put(
            f"{google.radicale_url(family)}school.ics",
            content="BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:school\r\n"
            "DTSTAMP:20261101T000000Z\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n"
            "SUMMARY:School\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            headers={"Content-Type": "text/calendar"},
        )
        put.raise_for_status()
    offered = [s.start for s in await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)]
    assert NINE in offered and NINE + timedelta(hours=1) not in offered  # the family calendar blocks 10:00

    async with setup.booking.store.tx() as tx:
        client = await tx.upsert_client(1, name="Jan", phone="+48601234567")
    appt = await setup.booking.request(Request(client.id, "first", "centre", "anna", Channel.ON_SITE, NINE))
    await setup.booking.calendar.put("anna", event(appt.uid))
    written = stored(google, appt.uid)
    assert written is not None and str(written.walk("VEVENT")[0]["STATUS"]) == "TENTATIVE"
    await setup.booking.calendar.put("anna", event(appt.uid, "CONFIRMED"))
    assert str(stored(google, appt.uid).walk("VEVENT")[0]["STATUS"]) == "CONFIRMED"  # type: ignore[union-attr]
    times = await setup.booking.calendar.appointment_times("anna", [appt.uid])
    assert times[appt.uid] == (NINE, NINE + timedelta(minutes=50))


async def test_an_expired_access_token_is_refreshed(setup: Setup, google: GoogleStandIn) -> None:
    await sign_in(setup.connections)
    await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)
    google.oauth.expire_access_tokens()
    await setup.booking.calendar.put("anna", event())
    assert google.oauth.refreshes == 1 and stored(google, "appt-1@bookingbot") is not None
    assert setup.revoked == []


async def test_a_revoked_sign_in_is_reported_once(setup: Setup, google: GoogleStandIn) -> None:
    await sign_in(setup.connections)
    google.oauth.revoke()
    for _ in range(2):
        with pytest.raises(CalendarUnavailable):
            await setup.booking.calendar.put("anna", event())
    with pytest.raises(CalendarUnavailable):
        await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)
    assert setup.revoked == ["anna:google"]
    assert (await setup.connections.status())["anna"]["state"] == "revoked"


async def test_429_with_retry_after_is_honoured(setup: Setup, google: GoogleStandIn) -> None:
    await sign_in(setup.connections, busy_too=False)
    google.failures.queue.append((429, {"Retry-After": "1"}))
    await setup.booking.calendar.put("anna", event())
    assert google.failures.seen == [429] and stored(google, "appt-1@bookingbot") is not None


async def test_5xx_is_retried_through_the_outbox(setup: Setup, google: GoogleStandIn, sqlite_store: Store) -> None:
    await sign_in(setup.connections, busy_too=False)
    async with sqlite_store.tx() as tx:
        client = await tx.upsert_client(1, name="Jan", phone="+48601234567")
    appt = await setup.booking.request(Request(client.id, "first", "centre", "anna", Channel.ON_SITE, NINE))
    google.failures.queue.append((503, {}))
    worker = OutboxWorker(sqlite_store, setup.booking.calendar, lambda a: event(a.uid), lambda: NOW)
    assert await worker.run_once() == 0 and stored(google, appt.uid) is None
    async with sqlite_store.tx() as tx:
        [row] = await tx.outbox_pending(appt.id)
    assert row.attempts == 1
    worker.clock = lambda: NOW + timedelta(hours=1)
    assert await worker.run_once() == 1 and stored(google, appt.uid) is not None


async def test_a_sign_in_link_works_once(setup: Setup, google: GoogleStandIn) -> None:
    from providers.oauth import SignInFailed

    spec = setup.connections.practice.specialist_by_id["anna"]
    link = await setup.connections.begin(spec, chat_id=1, redirect_uri=PASTE_REDIRECT)
    async with httpx.AsyncClient() as http:
        address = (await http.get(link, follow_redirects=False)).headers["location"]
    code, state = code_from_address(address)
    await setup.connections.complete(state, code)
    with pytest.raises(SignInFailed):
        await setup.connections.complete(state, code)
    with pytest.raises(SignInFailed):
        code_from_address(PASTE_REDIRECT + "?error=access_denied&state=x")
