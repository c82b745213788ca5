"""The booking service against a real calendar server and database: re-verification, our own events, buffers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio

from bot.calendar_text import event_for
from caldav_bridge.gateway import CalDAVGateway
from scheduling.booking import BookingService, InvalidRequest, Request, SlotTaken
from scheduling.config import parse_practice
from scheduling.model import Channel, Status
from scheduling.store import Store
from tests.fixtures.caldav import CalDAVServer, account_of, practice_for, put_raw

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # Friday; Ana works Mondays 09:00-17:00 in Warsaw
MONDAY = date(2026, 12, 7)
NINE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Warsaw


@pytest_asyncio.fixture
async def service(caldav_server: CalDAVServer, sqlite_store: Store) -> AsyncIterator[BookingService]:
    os.environ["BOOKINGBOT_TEST_CALDAV_PASSWORD"] = caldav_server.password
    practice = practice_for(caldav_server)
    gateway = CalDAVGateway(practice, accounts={"ana": account_of(caldav_server)}, clock=lambda: NOW)
    await gateway.start()
    try:
        yield BookingService(practice, sqlite_store, gateway, clock=lambda: NOW)
    finally:
        await gateway.close()


async def _client(service: BookingService, telegram_id: int = 1) -> int:
    async with service.store.tx() as tx:
        return (await tx.upsert_client(telegram_id, name="Jan", phone="+48601234567")).id


def _request(client_id: int, start: datetime = NINE, channel: Channel = Channel.ON_SITE) -> Request:
    return Request(client_id, "first", "centre", "ana", channel, start)


def _starts(slots) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.start.astimezone(UTC).strftime("%H:%M") for s in slots]


async def test_commit_rechecks_the_server_after_browsing(service: BookingService, caldav_server: CalDAVServer) -> None:
    browsed = await service.day_slots("first", "centre", ["ana"], MONDAY)
    assert "08:00" in _starts(browsed)  # 09:00 local is offered from the (now cached) calendar
    put_raw(
        caldav_server,
        "dentist.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:dentist\r\n"
        "DTSTAMP:20261201T000000Z\r\nDTSTART:20261207T081500Z\r\nDTEND:20261207T090000Z\r\n"
        "SUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    with pytest.raises(SlotTaken) as taken:
        await service.request(_request(await _client(service)))
    remaining = _starts(taken.value.remaining)
    assert "08:00" not in remaining and "08:30" not in remaining and "09:00" in remaining


async def test_our_own_events_are_judged_by_the_database(service: BookingService) -> None:
    appt = await service.request(_request(await _client(service)))
    await service.calendar.put("ana", event_for(service.practice, appt, appt.client))  # as the outbox would
    slots = await service.day_slots("first", "centre", ["ana"], MONDAY, fresh=True)
    assert "08:00" not in _starts(slots)
    async with service.store.tx() as tx:
        row = await tx.get_appointment(appt.id, for_update=True)
        await tx.transition(row, Status.DECLINED, actor="specialist:test", at=NOW)
    # The tentative event is still on the server (its removal waits in the outbox): the time is free anyway.
    slots = await service.day_slots("first", "centre", ["ana"], MONDAY, fresh=True)
    assert "08:00" in _starts(slots)


async def test_buffer_after_an_appointment_blocks_the_next_start(service: BookingService) -> None:
    data = service.practice.model_dump(mode="json")
    data["services"][0].update(buffer_after=15, start_every=30)
    service.practice = parse_practice(data)
    await service.request(_request(await _client(service)))  # 09:00-09:50, buffer to 10:05
    slots = _starts(await service.day_slots("first", "centre", ["ana"], MONDAY))
    assert "08:30" not in slots and "09:00" not in slots and "09:30" in slots  # 10:30 local is the next start
    with pytest.raises(SlotTaken):
        await service.request(_request(await _client(service, 2), NINE + timedelta(hours=1)))


async def test_impossible_requests_are_refused_not_booked(service: BookingService) -> None:
    client = await _client(service)
    with pytest.raises(InvalidRequest):
        await service.request(_request(client, NINE + timedelta(minutes=10)))  # off the start grid
    with pytest.raises(InvalidRequest):
        await service.request(Request(client, "yoga", "centre", "ana", Channel.ON_SITE, NINE))
    async with service.store.tx() as tx:
        assert await tx.active_appointments("ana", NOW, NOW + timedelta(days=30)) == []


async def test_a_calendar_never_read_books_nothing(service: BookingService) -> None:
    # Not connected (unreachable since start, or a sign-in revoked) and nothing cached: when unsure, busy.
    assert isinstance(service.calendar, CalDAVGateway)
    service.calendar.detach("ana")
    with pytest.raises(SlotTaken) as taken:
        await service.request(_request(await _client(service)))
    assert taken.value.remaining == []
    async with service.store.tx() as tx:
        assert await tx.active_appointments("ana", NOW, NOW + timedelta(days=30)) == []
