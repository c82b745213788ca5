"""Microsoft 365 through Microsoft Graph: sign-in, events written and moved, busy time by delta, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.outbox import OutboxWorker
from providers.connections import Connections
from providers.feeds import BusyFeeds
from providers.graph import GraphGateway
from providers.oauth import PASTE_REDIRECT, TokenVault, code_from_address, providers_from_env
from providers.router import CalendarRouter
from scheduling.booking import BookingService, Request
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.model import Channel
from scheduling.store import Store
from tests.fixtures.providers import GraphStandIn
from tests.test_google_calendar import MONDAY, NINE, NOW, practice


@dataclass
class Setup:
    connections: Connections
    booking: BookingService
    graph: GraphGateway
    revoked: list[str]


@pytest_asyncio.fixture
async def setup(graph: GraphStandIn, sqlite_store: Store) -> AsyncIterator[Setup]:
    p = practice("microsoft")
    providers = providers_from_env(graph.env)
    caldav = CalDAVGateway(p, clock=lambda: NOW)
    gateway = GraphGateway(p, sqlite_store, providers["microsoft"], clock=lambda: NOW)
    revoked: list[str] = []

    async def on_revoked(spec_id: str, provider: str) -> None:
        revoked.append(f"{spec_id}:{provider}")

    connections = Connections(
        p,
        sqlite_store,
        providers,
        TokenVault(TokenVault.new_key()),
        {"microsoft": gateway},
        clock=lambda: NOW,
        on_revoked=on_revoked,
    )
    router = CalendarRouter(caldav, BusyFeeds(p, clock=lambda: NOW), {"anna": gateway}, before=connections.ensure)
    try:
        yield Setup(connections, BookingService(p, sqlite_store, router, clock=lambda: NOW), gateway, revoked)
    finally:
        await gateway.close()
        await router.feeds.close()


async def sign_in(connections: Connections) -> None:
    spec = connections.practice.specialist_by_id["anna"]
    link = await connections.begin(spec, chat_id=1, redirect_uri=PASTE_REDIRECT)
    async with httpx.AsyncClient() as http:
        address = (await http.get(link, follow_redirects=False)).headers["location"]
    row = await connections.complete(*reversed(code_from_address(address)))
    assert [c["writable"] for c in row.calendars["found"]] == [True, False]
    await connections.choose("anna", booking="AAMkCal1")
    await connections.choose("anna", toggle="AAMkCal2")
    await connections.finish("anna")


def event(uid: str, status: str = "TENTATIVE", start: datetime = NINE) -> EventSpec:
    return EventSpec(uid, start, start + timedelta(minutes=50), "Europe/Warsaw", "First", "", "Centre", status, 0, 1)  # type: ignore[arg-type]


async def test_bookings_are_written_moved_and_removed(setup: Setup, graph: GraphStandIn) -> None:
    await sign_in(setup.connections)
    assert (await setup.connections.status())["anna"]["account"] == graph.user
    await setup.booking.calendar.put("anna", event("a1@bookingbot"))
    [written] = graph.live("AAMkCal1")
    assert written.data["showAs"] == "tentative" and written.data["start"]["dateTime"].startswith("2026-12-07T08:00")
    await setup.booking.calendar.put("anna", event("a1@bookingbot", "CONFIRMED"))
    assert [e.data["showAs"] for e in graph.live("AAMkCal1")] == ["busy"]

    later = NINE + timedelta(hours=2)
    graph.edit(
        written.id,
        start={"dateTime": "2026-12-07T10:00:00.0000000", "timeZone": "UTC"},
        end={"dateTime": "2026-12-07T10:50:00.0000000", "timeZone": "UTC"},
    )
    times = await setup.booking.calendar.appointment_times("anna", ["a1@bookingbot"])
    assert times == {"a1@bookingbot": (later, later + timedelta(minutes=50))}
    graph.delete(written.id)
    assert await setup.booking.calendar.appointment_times("anna", ["a1@bookingbot"]) == {}

    await setup.booking.calendar.put("anna", event("a2@bookingbot"))
    await setup.booking.calendar.remove("anna", "a2@bookingbot")
    assert graph.live("AAMkCal1") == []


async def test_a_retried_create_makes_one_event(setup: Setup, graph: GraphStandIn) -> None:
    await sign_in(setup.connections)
    await setup.booking.calendar.put("anna", event("a1@bookingbot"))
    setup.graph._specs["anna"].remote.clear()  # the answer to the first POST was lost
    await setup.booking.calendar.put("anna", event("a1@bookingbot"))
    assert len(graph.live("AAMkCal1")) == 1


async def test_busy_time_from_the_chosen_calendars(setup: Setup, graph: GraphStandIn) -> None:
    with pytest.raises(CalendarUnavailable):
        await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)
    await sign_in(setup.connections)
    ten = NINE + timedelta(hours=1)
    graph.add("AAMkCal2", "Dentist", ten, ten + timedelta(hours=1))
    graph.add("AAMkCal1", "Lunch (free)", NINE + timedelta(hours=3), NINE + timedelta(hours=4), showAs="free")
    graph.add("AAMkCal1", "Cancelled", NINE + timedelta(hours=4), NINE + timedelta(hours=5), isCancelled=True)
    offered = [s.start for s in await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)]
    assert NINE in offered and ten not in offered
    assert NINE + timedelta(hours=3) in offered and NINE + timedelta(hours=4) in offered
    # All day on Monday 14th: Outlook's all-day dates are local days, not UTC midnights.
    graph.add(
        "AAMkCal1", "Training", datetime(2026, 12, 14, tzinfo=UTC), datetime(2026, 12, 15, tzinfo=UTC), isAllDay=True
    )
    await setup.booking.busy(["anna"], NOW, NOW + timedelta(days=1), fresh=True)
    assert await setup.booking.day_slots("first", "centre", ["anna"], date(2026, 12, 14)) == []


async def test_an_expired_delta_token_means_a_full_read(setup: Setup, graph: GraphStandIn) -> None:
    await sign_in(setup.connections)
    await setup.booking.day_slots("first", "centre", ["anna"], MONDAY)
    graph.add("AAMkCal1", "Dentist", NINE, NINE + timedelta(hours=1))
    graph.expire_deltas = True
    busy = await setup.booking.calendar.busy("anna", NINE, NINE + timedelta(hours=1), fresh=True)
    assert [b.label for b in busy] == ["Dentist"]


async def test_throttling_tokens_and_outages(setup: Setup, graph: GraphStandIn, sqlite_store: Store) -> None:
    await sign_in(setup.connections)
    graph.failures.queue.append((429, {"Retry-After": "1"}))
    await setup.booking.calendar.put("anna", event("a1@bookingbot"))
    assert graph.failures.seen == [429] and len(graph.live()) == 1

    graph.oauth.expire_access_tokens()
    await setup.booking.calendar.put("anna", event("a1@bookingbot", "CONFIRMED"))
    assert graph.oauth.refreshes == 1

    async with sqlite_store.tx() as tx:
        client = await tx.upsert_client(1, name="Jan", phone="+48601234567")
    appt = await setup.booking.request(
        Request(client.id, "first", "centre", "anna", Channel.ON_SITE, NINE + timedelta(hours=2))
    )
    graph.failures.queue.append((503, {}))
    worker = OutboxWorker(sqlite_store, setup.booking.calendar, lambda a: event(a.uid, start=a.start), lambda: NOW)
    assert await worker.run_once() == 0
    worker.clock = lambda: NOW + timedelta(hours=1)
    assert await worker.run_once() == 1 and len(graph.live()) == 2

    graph.oauth.revoke()
    for _ in range(2):
        with pytest.raises(CalendarUnavailable):
            await setup.booking.calendar.put("anna", event(appt.uid, "CONFIRMED"))
    assert setup.revoked == ["anna:microsoft"]


async def test_a_series_is_written_visit_by_visit_at_local_times(setup: Setup, graph: GraphStandIn) -> None:
    from scheduling.calendar import OverrideSpec, RecurrenceSpec

    await sign_in(setup.connections)
    first = datetime(2027, 3, 15, 17, 0, tzinfo=UTC)  # Monday 18:00 in Warsaw; summer time from 28 March
    moved_from = first + timedelta(weeks=1)
    rule = RecurrenceSpec(
        1,
        4,
        None,
        exdates=(datetime(2027, 3, 29, 16, 0, tzinfo=UTC),),  # the third visit, 18:00 local
        overrides=(
            OverrideSpec(moved_from, moved_from + timedelta(hours=1), moved_from + timedelta(hours=2), "CONFIRMED"),
        ),
    )
    series = EventSpec(
        "s1@bookingbot",
        first,
        first + timedelta(minutes=50),
        "Europe/Warsaw",
        "First",
        "",
        "Centre",
        "CONFIRMED",
        0,
        1,
        recurrence=rule,
    )
    await setup.booking.calendar.put("anna", series)
    starts = sorted(e.data["start"]["dateTime"][:16] for e in graph.live("AAMkCal1"))
    assert starts == ["2027-03-15T17:00", "2027-03-22T18:00", "2027-04-05T16:00"]  # 18:00 local after the change
    assert await setup.booking.calendar.series_state("anna", ["s1@bookingbot"]) == {"s1@bookingbot": None}
    await setup.booking.calendar.remove("anna", "s1@bookingbot")
    assert graph.live("AAMkCal1") == []
