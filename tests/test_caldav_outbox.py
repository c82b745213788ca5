"""The outbox worker writes through outages: nothing is lost across a server and a worker restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.ical import from_ical
from caldav_bridge.outbox import OutboxWorker
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.db import create_schema, make_engine
from scheduling.model import Status
from scheduling.store import Store
from tests.fixtures.caldav import CalDAVServer, RadicaleServer, account_of, get_raw, practice_for

T0 = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def event_for(appt: object) -> EventSpec:
    a = appt  # an AppointmentRow
    return EventSpec(
        uid=a.uid,  # type: ignore[attr-defined]
        start=a.start.replace(tzinfo=UTC) if a.start.tzinfo is None else a.start,  # type: ignore[attr-defined]
        end=a.end.replace(tzinfo=UTC) if a.end.tzinfo is None else a.end,  # type: ignore[attr-defined]
        tzid="Europe/Warsaw",
        summary="Request",
        description="",
        location="",
        status="CONFIRMED" if a.status == Status.CONFIRMED else "TENTATIVE",  # type: ignore[attr-defined]
        sequence=a.sequence,  # type: ignore[attr-defined]
        appointment_id=a.id,  # type: ignore[attr-defined]
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    await create_schema(engine)
    yield Store(engine)
    await engine.dispose()


async def book(store: Store, clock: Clock) -> tuple[int, str]:
    async with store.tx() as tx:
        client = await tx.upsert_client(1001, at=clock())
        appt = await tx.add_appointment(
            client_id=client.id,
            specialist_id="ana",
            service_id="first",
            location_id="centre",
            channel="on_site",
            start=T0 + timedelta(days=10),
            end=T0 + timedelta(days=10, minutes=50),
            note=None,
            source=None,
            expires_at=None,
            actor="client",
            at=clock(),
        )
        await tx.enqueue_sync(appt.id, "ana", clock())
        return appt.id, appt.uid


async def test_outbox_replays_after_server_restart(
    store: Store, radicale_restartable: RadicaleServer, radicale_account: CalDAVServer
) -> None:
    clock = Clock()
    appt_id, uid = await book(store, clock)
    practice = practice_for(radicale_account)

    gw = CalDAVGateway(practice, accounts={"ana": account_of(radicale_account)}, timeout=2, clock=clock)
    await gw.start()
    radicale_restartable.stop()
    worker = OutboxWorker(store, gw, event_for, clock)
    assert await worker.run_once() == 0
    async with store.tx() as tx:
        [row] = await tx.outbox_pending(appt_id)
    assert row.attempts == 1 and row.last_error and "CalendarUnavailable" in row.last_error
    assert "1001" not in row.last_error
    await gw.close()

    # "Restart": the server comes back, a new gateway and a new worker pick the row up when due.
    radicale_restartable.start()
    gw2 = CalDAVGateway(practice, accounts={"ana": account_of(radicale_account)}, clock=clock)
    await gw2.start()
    worker2 = OutboxWorker(store, gw2, event_for, clock)
    assert await worker2.run_once() == 0  # not due yet: backoff
    clock.now = row.next_attempt_at.replace(tzinfo=UTC) + timedelta(seconds=1)
    assert await worker2.run_once() == 1
    stored = get_raw(radicale_account, f"{uid}.ics")
    assert stored.status_code == 200 and from_ical(stored.text).status == "TENTATIVE"
    async with store.tx() as tx:
        assert await tx.outbox_pending() == []

    # Cancelling removes the event through the same path.
    async with store.tx() as tx:
        appt = await tx.get_appointment(appt_id)
        assert appt is not None
        await tx.transition(appt, Status.CANCELLED, actor="client", at=clock())
        await tx.enqueue_sync(appt_id, "ana", clock())
    assert await worker2.run_once() == 1
    assert get_raw(radicale_account, f"{uid}.ics").status_code == 404
    await gw2.close()


async def test_stale_cache_answers_browsing_but_not_fresh_reads(
    radicale_restartable: RadicaleServer, radicale_account: CalDAVServer
) -> None:
    gw = CalDAVGateway(practice_for(radicale_account), accounts={"ana": account_of(radicale_account)}, timeout=2, ttl=0)
    await gw.start()
    now = datetime.now(UTC)
    assert await gw.busy("ana", now, now + timedelta(days=7)) == []
    radicale_restartable.stop()
    assert await gw.busy("ana", now, now + timedelta(days=7)) == []  # stale beats nothing
    with pytest.raises(CalendarUnavailable):
        await gw.busy("ana", now, now + timedelta(days=7), fresh=True)
    with pytest.raises(CalendarUnavailable):
        await gw.busy("ana", now, now + timedelta(days=400))  # never cached
    await gw.close()


async def test_run_forever_writes_at_once_on_wake(store: Store, radicale_account: CalDAVServer) -> None:
    import asyncio

    clock = Clock()
    gw = CalDAVGateway(practice_for(radicale_account), accounts={"ana": account_of(radicale_account)}, clock=clock)
    await gw.start()
    worker = OutboxWorker(store, gw, event_for, clock)
    task = asyncio.create_task(worker.run_forever(poll=60))
    await asyncio.sleep(0.1)
    _, uid = await book(store, clock)
    worker.wake()
    for _ in range(100):
        if get_raw(radicale_account, f"{uid}.ics").status_code == 200:
            break
        await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert get_raw(radicale_account, f"{uid}.ics").status_code == 200
    await gw.close()


async def test_a_change_while_the_worker_writes_leaves_no_phantom_event(
    store: Store, radicale_account: CalDAVServer
) -> None:
    """The request expires while the worker writes its TENTATIVE event: the removal still follows."""
    clock = Clock()
    appt_id, uid = await book(store, clock)
    gw = CalDAVGateway(practice_for(radicale_account), accounts={"ana": account_of(radicale_account)}, clock=clock)
    await gw.start()

    class ExpiresMidWrite:
        """The gateway, with the expiry sweep running between the worker's read and its write."""

        async def put(self, specialist_id: str, event: EventSpec) -> str:
            clock.now += timedelta(hours=25)  # far past the 60 s lease by the clock
            async with store.tx() as tx:
                appt = await tx.get_appointment(appt_id)
                assert appt is not None
                await tx.transition(appt, Status.EXPIRED, actor="system", at=clock())
                await tx.enqueue_sync(appt_id, "ana", clock())
            return await gw.put(specialist_id, event)

        def __getattr__(self, name: str) -> object:
            return getattr(gw, name)

    assert await OutboxWorker(store, ExpiresMidWrite(), event_for, clock).run_once() == 1  # type: ignore[arg-type]
    assert get_raw(radicale_account, f"{uid}.ics").status_code == 200  # the stale TENTATIVE write landed...
    assert await OutboxWorker(store, gw, event_for, clock).run_once() == 1
    assert get_raw(radicale_account, f"{uid}.ics").status_code == 404  # ...and the removal came after it
    async with store.tx() as tx:
        assert await tx.outbox_pending() == []
    await gw.close()
