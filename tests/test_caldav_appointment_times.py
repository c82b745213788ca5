"""Reading back where our events stand, on Radicale and Xandikos: moved, deleted, cancelled, far away, unreadable."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.ical import to_ical
from tests.fixtures.caldav import (
    GATEWAY_NOW,
    CalDAVServer,
    account_of,
    delete_raw,
    event_spec,
    practice_for,
    put_raw,
)
from tests.fixtures.proxy import FaultProxy

START = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
VISIT = timedelta(minutes=50)


def event_at(uid: str, start: datetime) -> str:
    return to_ical(event_spec(uid=uid, start=start, end=start + VISIT))


async def test_times_follow_what_the_calendar_app_did(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    uids = [f"a{i}@bookingbot" for i in range(5)]
    for i, uid in enumerate(uids):
        await gateway.put(
            "ana", event_spec(uid=uid, start=START + timedelta(hours=i), end=START + timedelta(hours=i, minutes=50))
        )
    assert await gateway.appointment_times("ana", uids) == {
        uid: (START + timedelta(hours=i), START + timedelta(hours=i, minutes=50)) for i, uid in enumerate(uids)
    }

    # Someone else's client: a0 moved by a day, a1 deleted, a2 marked cancelled, a3 moved a year away
    # (outside any window the bridge caches), a4 replaced by something unreadable.
    later = START + timedelta(days=1)
    put_raw(
        caldav_server,
        f"{uids[0]}.ics",
        to_ical(event_spec(uid=uids[0], start=later, end=later + timedelta(minutes=50))),
    )
    delete_raw(caldav_server, f"{uids[1]}.ics")
    cancelled = to_ical(
        event_spec(uid=uids[2], start=START + timedelta(hours=2), end=START + timedelta(hours=2, minutes=50))
    )
    put_raw(caldav_server, f"{uids[2]}.ics", cancelled.replace("STATUS:TENTATIVE", "STATUS:CANCELLED"))
    far = START + timedelta(days=365)
    put_raw(
        caldav_server, f"{uids[3]}.ics", to_ical(event_spec(uid=uids[3], start=far, end=far + timedelta(minutes=50)))
    )
    broken = to_ical(event_spec(uid=uids[4])).replace("DTSTART;", "DTSTART;X-BROKEN=1;").replace("DTEND", "DTXEND")
    put_raw(caldav_server, f"{uids[4]}.ics", broken)

    times = await gateway.appointment_times("ana", uids)
    assert times[uids[0]] == (later, later + timedelta(minutes=50))
    assert uids[1] not in times and uids[2] not in times  # gone: deleted, or cancelled in the app
    assert times[uids[3]] == (far, far + timedelta(minutes=50))
    assert uids[4] in times and times[uids[4]] is None  # present, unreadable: nothing to act on


async def test_a_fresh_read_never_answers_from_a_read_that_left_before_it(caldav_server: CalDAVServer) -> None:
    """A read already on its way when the event was deleted cannot say it is still there."""
    async with FaultProxy(caldav_server.url) as proxy:
        gw = CalDAVGateway(
            practice_for(caldav_server),
            accounts={"ana": dataclasses.replace(account_of(caldav_server), url=proxy.url)},
            clock=lambda: GATEWAY_NOW,
        )
        await gw.start()
        try:
            start = GATEWAY_NOW + timedelta(days=2)
            await gw.put("ana", event_spec(uid="early@bookingbot", start=start, end=start + VISIT))
            assert "early@bookingbot" in await gw.appointment_times("ana", ["early@bookingbot"])

            proxy.answers.clear()
            earlier = asyncio.create_task(gw.busy("ana", GATEWAY_NOW, GATEWAY_NOW + timedelta(days=7), fresh=True))
            await proxy.holding.wait()  # the server has answered it, the answer is on its way
            delete_raw(caldav_server, "early@bookingbot.ics")
            later = asyncio.create_task(gw.appointment_times("ana", ["early@bookingbot"]))
            await asyncio.sleep(0.1)
            proxy.answers.set()
            await earlier
            assert await later == {}
        finally:
            await gw.close()
