"""Abuse rules against a real calendar server and both databases: pending requests, requests a day, Send rate,
and no approval once a visit's time has begun."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from caldav_bridge.gateway import CalDAVGateway
from scheduling.booking import BookingService, InvalidRequest, Lapsed, Request, SlotTaken
from scheduling.config import ConfigError, parse_practice
from scheduling.limits import Limit, LimitReached
from scheduling.model import Channel, Status
from scheduling.series import SeriesRequest, SeriesService
from scheduling.store import Store
from tests.fixtures.bot import Clock
from tests.fixtures.caldav import CalDAVServer, account_of, practice_for

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # Friday; Ana works Mondays 09:00-17:00 in Warsaw
MONDAY_NINE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Warsaw
ADMIN = 7


def _starts(count: int) -> list[datetime]:
    """Distinct, non-overlapping starts on Ana's Mondays: 09:00 to 16:00 local, week after week."""
    hours = [MONDAY_NINE + timedelta(hours=h) for h in range(8)]
    return [h + timedelta(weeks=w) for w in range(count // 8 + 1) for h in hours][:count]


@pytest_asyncio.fixture
async def clock() -> Clock:
    return Clock(NOW)


async def _service(server: CalDAVServer, store: Store, clock: Clock, **limits: int) -> BookingService:
    os.environ["BOOKINGBOT_TEST_CALDAV_PASSWORD"] = server.password
    data = practice_for(server).model_dump(mode="json")
    data["limits"] = limits
    data["practice"]["admins"] = [ADMIN]
    practice = parse_practice(data)
    gateway = CalDAVGateway(practice, accounts={"ana": account_of(server)}, clock=clock)
    await gateway.start()
    return BookingService(practice, store, gateway, clock=clock)


@pytest_asyncio.fixture
async def services(caldav_server: CalDAVServer, store: Store, clock: Clock) -> AsyncIterator[list[BookingService]]:
    """Two booking services on one database, as two bot processes: limits must hold across them."""
    made = [await _service(caldav_server, store, clock, sends_per_minute=60, requests_per_day=50) for _ in range(2)]
    try:
        yield made
    finally:
        for service in made:
            await service.calendar.close()  # type: ignore[attr-defined]


async def _client(service: BookingService, telegram_id: int = 1) -> int:
    async with service.store.tx() as tx:
        return (await tx.upsert_client(telegram_id, name="Jan", phone="+48601234567")).id


def _request(client_id: int, start: datetime, **extra: object) -> Request:
    return Request(client_id, "first", "centre", "ana", Channel.ON_SITE, start, **extra)  # type: ignore[arg-type]


async def test_fifteen_concurrent_sends_get_two_requests(services: list[BookingService]) -> None:
    client = await _client(services[0])
    outcomes = await asyncio.gather(
        *(services[i % 2].request(_request(client, start)) for i, start in enumerate(_starts(15))),
        return_exceptions=True,
    )
    booked = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(booked) == 2
    assert all(isinstance(r, LimitReached) and r.limit == Limit.PENDING and r.allowed == 2 for r in refused), refused
    async with services[0].store.tx() as tx:
        assert len(await tx.client_appointments(client)) == 2
    # A partner's booking and the practice's are not the client's own requests: no limit applies.
    partner = await services[0].request(_request(client, _starts(16)[15], confirmed=True, actor="partner:x"))
    assert partner.status == Status.CONFIRMED
    # Once a request is decided, the client may send another.
    withdrawn = await services[0].cancel_by_client(booked[0].id, client)
    assert withdrawn.status == Status.CANCELLED
    assert (await services[1].request(_request(client, _starts(17)[16]))).status == Status.REQUESTED


async def test_a_series_counts_as_one_request(services: list[BookingService]) -> None:
    service = services[0]
    client = await _client(service)
    series = SeriesService(service)
    weekly = SeriesRequest(client, "first", "centre", "ana", Channel.ON_SITE, MONDAY_NINE, count=4)
    _row, visits = await series.create(weekly, actor=f"client:{client}", confirmed=False)
    assert len(visits) == 4  # four pending visits, one request
    await service.request(_request(client, MONDAY_NINE + timedelta(hours=2)))
    with pytest.raises(LimitReached) as refused:
        await service.request(_request(client, MONDAY_NINE + timedelta(hours=4)))
    assert refused.value.limit == Limit.PENDING
    later = SeriesRequest(client, "first", "centre", "ana", Channel.ON_SITE, MONDAY_NINE + timedelta(hours=6), count=4)
    with pytest.raises(LimitReached):
        await series.create(later, actor=f"client:{client}", confirmed=False)
    # The specialist booking a course for the client is not the client's request.
    _row, booked = await series.create(later, actor="specialist:9001", confirmed=True)
    assert len(booked) == 4


async def test_requests_a_day_count_whatever_became_of_them(
    caldav_server: CalDAVServer, store: Store, clock: Clock
) -> None:
    service = await _service(caldav_server, store, clock, requests_per_day=3, sends_per_minute=60)
    try:
        client = await _client(service)
        starts = _starts(5)
        for start in starts[:3]:
            appt = await service.request(_request(client, start))
            await service.cancel_by_client(appt.id, client)
        with pytest.raises(LimitReached) as refused:
            await service.request(_request(client, starts[3]))
        assert (refused.value.limit, refused.value.allowed) == (Limit.DAY, 3)
        clock.advance(hours=24, minutes=1)
        assert (await service.request(_request(client, starts[4]))).status == Status.REQUESTED
    finally:
        await service.calendar.close()  # type: ignore[attr-defined]


async def test_send_is_rate_limited_even_when_refused(caldav_server: CalDAVServer, store: Store, clock: Clock) -> None:
    service = await _service(caldav_server, store, clock, sends_per_minute=3)
    try:
        client = await _client(service)
        off_grid = MONDAY_NINE + timedelta(minutes=10)
        for _ in range(3):
            with pytest.raises(InvalidRequest):
                await service.request(_request(client, off_grid))
        with pytest.raises(LimitReached) as refused:
            await service.request(_request(client, MONDAY_NINE))
        assert refused.value.limit == Limit.RATE
        clock.advance(minutes=1)
        assert (await service.request(_request(client, MONDAY_NINE))).status == Status.REQUESTED
        # A time someone else just took costs nothing: a client in a crowd may try again and again.
        other = await _client(service, 2)
        for _ in range(5):
            with pytest.raises(SlotTaken):
                await service.request(_request(other, MONDAY_NINE))
        assert (await service.request(_request(other, MONDAY_NINE + timedelta(hours=1)))).status == Status.REQUESTED
    finally:
        await service.calendar.close()  # type: ignore[attr-defined]


def test_limits_are_checked_in_the_practice_file(caldav_server: CalDAVServer) -> None:
    data = practice_for(caldav_server).model_dump(mode="json")
    assert parse_practice(data).limits.pending_requests == 2
    with pytest.raises(ConfigError) as bad:
        parse_practice({**data, "limits": {"pending_requests": 0, "sends_per_minte": 3}})
    assert "limits.pending_requests: Input should be greater than or equal to 1" in bad.value.errors
    assert "limits.sends_per_minte: unknown key (check the spelling)" in bad.value.errors
    with pytest.raises(ConfigError) as bad:
        parse_practice({**data, "limits": {"pending_requests": 4, "requests_per_day": 3}})
    assert bad.value.errors == [
        "limits.requests_per_day: 3 is below pending_requests (4); a client could never reach the pending limit"
    ]


async def test_nothing_is_approved_once_its_time_has_begun(services: list[BookingService], clock: Clock) -> None:
    service = services[0]
    client = await _client(service)
    single = await service.request(_request(client, MONDAY_NINE))
    course = SeriesRequest(client, "first", "centre", "ana", Channel.ON_SITE, MONDAY_NINE + timedelta(hours=2), count=4)
    series, _visits = await SeriesService(service).create(course, actor=f"client:{client}", confirmed=False)
    clock.now = MONDAY_NINE  # the single visit begins
    with pytest.raises(Lapsed):
        await service.approve(single.id, ADMIN)
    assert [a.id for a in await service.expire_due()] == [single.id]  # the one expiry path records it
    clock.now = MONDAY_NINE + timedelta(hours=2, minutes=1)  # the course's first visit has begun
    with pytest.raises(Lapsed):
        await SeriesService(service).decide(series.id, ADMIN, approve=True)
    declined = await SeriesService(service).decide(series.id, ADMIN, approve=False)  # declining still works
    assert {a.status for a in declined[1]} == {Status.DECLINED}
