"""Persistence: schema, UTC storage, clients, appointments, lifecycle, drafts, outbox, locking."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import OperationalError, StatementError

from scheduling import store as store_module
from scheduling.db import AppointmentRow, create_schema, make_engine
from scheduling.lifecycle import InvalidTransition
from scheduling.model import Status
from scheduling.store import RETRY_MAX, Store, Tx

WARSAW = ZoneInfo("Europe/Warsaw")
T0 = datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@asynccontextmanager
async def second_store(url: str) -> AsyncIterator[Store]:
    """Another engine on the same database, as a second bot process would have."""
    engine = make_engine(url)
    try:
        yield Store(engine)
    finally:
        await engine.dispose()


async def new_client(tx: Tx, telegram_id: int = 100) -> int:
    return (await tx.upsert_client(telegram_id, name="Client", at=T0)).id


async def book(
    tx: Tx,
    client_id: int,
    start: datetime,
    end: datetime | None = None,
    *,
    specialist: str = "anna",
    expires_at: datetime | None = None,
) -> AppointmentRow:
    return await tx.add_appointment(
        client_id=client_id,
        specialist_id=specialist,
        service_id="consultation",
        location_id="centre",
        channel="on_site",
        start=start,
        end=end or start + HOUR,
        note=None,
        source=None,
        expires_at=expires_at,
        actor=f"client:{client_id}",
        at=T0 - timedelta(days=1),
    )


# schema


async def test_sqlite_url_makes_folder_and_uses_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/bot.sqlite3")
    try:
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
    finally:
        await engine.dispose()
    assert (mode.lower(), keys) == ("wal", 1)
    assert (tmp_path / "nested" / "dir" / "bot.sqlite3").exists()


async def _ticking(ticks: list[float]) -> None:
    while True:
        ticks.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.01)


async def test_a_write_waits_for_another_writer_while_the_loop_runs_on(tmp_path: Path) -> None:
    """Statements run on the loop's thread, but a wait for another process's write lock does not stop the loop."""
    path = tmp_path / "bot.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    await create_schema(engine)
    store = Store(engine)
    other = sqlite3.connect(path, isolation_level=None)  # as another process would hold it
    other.execute("BEGIN IMMEDIATE")
    ticks: list[float] = []
    ticker = asyncio.create_task(_ticking(ticks))
    try:

        async def save() -> None:
            async with store.quick() as tx:
                await tx.save_draft(7, {"step": "day"}, 42)

        write = asyncio.create_task(save())
        await asyncio.sleep(0.3)
        assert not write.done()  # waiting for the lock, not failed
        assert len(ticks) >= 10  # and the loop went on meanwhile
        other.execute("COMMIT")
        await asyncio.wait_for(write, 5)
        async with store.quick() as tx:
            row = await tx.get_draft(7)
        assert (row.data, row.message_id) == ({"step": "day"}, 42)
    finally:
        ticker.cancel()
        other.close()
        await engine.dispose()


async def test_a_write_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    engine = make_engine(f"sqlite:///{path}", busy_timeout=0.3)
    await create_schema(engine)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            async with Store(engine).quick() as tx:
                await tx.save_draft(7, {}, None)
        assert 0.3 <= time.monotonic() - began < 5
    finally:
        other.close()
        await engine.dispose()


# time zones


async def test_aware_utc_round_trip_across_dst(store: Store) -> None:
    # 02:30 local does not exist on 2026-03-29 in Warsaw; 01:30 -> 03:30 spans the jump (1 real hour).
    start = datetime(2026, 3, 29, 1, 30, tzinfo=WARSAW)
    end = datetime(2026, 3, 29, 3, 30, tzinfo=WARSAW)
    autumn = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=WARSAW)  # the second 02:30 (CET)
    async with store.tx() as tx:
        appt_id = (await book(tx, await new_client(tx), start, end, expires_at=autumn)).id
    async with store.tx() as tx:
        appt = await tx.get_appointment(appt_id)
        assert appt is not None
        assert appt.start.utcoffset() == timedelta(0) and appt.start.tzinfo is UTC
        assert appt.start == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
        assert appt.end == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
        assert appt.expires_at == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        assert appt.expires_at is not None and appt.expires_at.tzinfo is UTC
        # Bounds given in another zone compare as instants, not as wall-clock text.
        found = await tx.active_appointments(
            "anna", datetime(2026, 3, 29, 3, 0, tzinfo=WARSAW), datetime(2026, 3, 29, 4, tzinfo=WARSAW)
        )
        assert [a.id for a in found] == [appt_id]


async def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with store.tx() as tx:
            await book(tx, await new_client(tx), datetime(2026, 3, 30, 10, 0))


# clients and consents


async def test_upsert_client_keeps_fields_not_given(store: Store) -> None:
    async with store.tx() as tx:
        first = await tx.upsert_client(42, name="Ada", language="pl", at=T0)
    async with store.tx() as tx:
        again = await tx.upsert_client(42, phone="+48600000000", at=T0 + HOUR)
    assert again.id == first.id
    assert (again.name, again.phone, again.email, again.language) == ("Ada", "+48600000000", None, "pl")
    assert again.created_at == T0 and again.updated_at == T0 + HOUR
    async with store.tx() as tx:
        assert (await tx.client_by_telegram(42)).id == first.id  # type: ignore[union-attr]
        assert await tx.client_by_telegram(43) is None
        fetched = await tx.get_client(first.id)
        assert fetched is not None and fetched.phone == "+48600000000"


async def test_consent_is_per_policy_version(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        assert not await tx.has_consent(client_id, "2026-01")
        await tx.record_consent(client_id, "2026-01", T0)
    async with store.tx() as tx:
        assert await tx.has_consent(client_id, "2026-01")
        assert not await tx.has_consent(client_id, "2026-06")
        await tx.record_consent(client_id, "2026-01", T0, "health")
    async with store.quick() as q:  # the hot path's reading of the same
        assert await q.consents_in_force(client_id, "2026-01") == {"terms", "health"}
        assert await q.consents_in_force(client_id, "2026-06") == set()
    async with store.tx() as tx:
        await tx.withdraw_consents(client_id, T0 + HOUR)
    async with store.quick() as q:
        assert await q.consents_in_force(client_id, "2026-01") == set()


# appointments and lifecycle


async def test_new_appointment_is_requested_and_records_creation(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        a = await book(tx, client_id, T0)
        b = await book(tx, client_id, T0 + 2 * HOUR)
    assert a.status == Status.REQUESTED and a.sequence == 0
    assert a.uid.endswith("@bookingbot") and a.uid != b.uid
    async with store.tx() as tx:
        assert (await tx.appointment_by_uid(a.uid)).id == a.id  # type: ignore[union-attr]
        assert await tx.appointment_by_uid("missing@bookingbot") is None
        [created] = await tx.transitions(a.id)
    assert (created.from_status, created.to_status, created.actor) == (
        None,
        Status.REQUESTED,
        f"client:{client_id}",
    )


async def test_allowed_transitions_bump_sequence_and_are_recorded(store: Store) -> None:
    async with store.tx() as tx:
        appt = await book(tx, await new_client(tx), T0)
    async with store.tx() as tx:
        await tx.transition(appt, Status.CONFIRMED, actor="specialist:anna", at=T0 - HOUR)
    async with store.tx() as tx:
        loaded = await tx.get_appointment(appt.id, for_update=True)
        assert loaded is not None
        await tx.transition(loaded, Status.CANCELLED, actor="client:100", at=T0 - HOUR / 2, reason="ill")
    async with store.tx() as tx:
        stored = await tx.get_appointment(appt.id)
        steps = await tx.transitions(appt.id)
    assert stored is not None and stored.status == Status.CANCELLED and stored.sequence == 2
    assert stored.updated_at == T0 - HOUR / 2
    assert appt.status == Status.CONFIRMED and appt.sequence == 1
    assert [(s.from_status, s.to_status, s.actor, s.reason) for s in steps] == [
        (None, Status.REQUESTED, f"client:{appt.client_id}", None),
        (Status.REQUESTED, Status.CONFIRMED, "specialist:anna", None),
        (Status.CONFIRMED, Status.CANCELLED, "client:100", "ill"),
    ]


async def test_refused_transition_leaves_status_unchanged(store: Store) -> None:
    async with store.tx() as tx:
        appt = await book(tx, await new_client(tx), T0)
        await tx.transition(appt, Status.DECLINED, actor="specialist:anna", at=T0)
    with pytest.raises(InvalidTransition):
        async with store.tx() as tx:
            await tx.transition(appt, Status.CONFIRMED, actor="specialist:anna", at=T0)
    async with store.tx() as tx:
        stored = await tx.get_appointment(appt.id)
        assert stored is not None and stored.status == Status.DECLINED and stored.sequence == 1
        assert len(await tx.transitions(appt.id)) == 2
    assert appt.status == Status.DECLINED


async def test_transition_from_stale_copy_is_refused(store: Store) -> None:
    """The expiry job and an approval racing: the later one sees the real status and fails."""
    async with store.tx() as tx:
        appt_id = (await book(tx, await new_client(tx), T0)).id
    async with store.tx() as tx:
        stale = await tx.get_appointment(appt_id)
    async with store.tx() as tx:
        fresh = await tx.get_appointment(appt_id)
        assert fresh is not None
        await tx.transition(fresh, Status.EXPIRED, actor="system", at=T0)
    assert stale is not None and stale.status == Status.REQUESTED
    with pytest.raises(InvalidTransition) as refused:
        async with store.tx() as tx:
            await tx.transition(stale, Status.CONFIRMED, actor="specialist:anna", at=T0)
    assert refused.value.current == Status.EXPIRED
    async with store.tx() as tx:
        stored = await tx.get_appointment(appt_id)
    assert stored is not None and stored.status == Status.EXPIRED and stored.sequence == 1


async def test_active_appointments_overlap_edges(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        appt = await book(tx, client_id, T0)  # 10:00-11:00
        declined = await book(tx, client_id, T0)
        await tx.transition(declined, Status.DECLINED, actor="specialist:anna", at=T0)
        await book(tx, client_id, T0, specialist="piotr")
    minute = timedelta(minutes=1)
    async with store.tx() as tx:
        assert await tx.active_appointments("anna", T0 - HOUR, T0) == []  # touches the start
        assert await tx.active_appointments("anna", T0 + HOUR, T0 + 2 * HOUR) == []  # touches the end
        assert [a.id for a in await tx.active_appointments("anna", T0 - HOUR, T0 + minute)] == [appt.id]
        assert [a.id for a in await tx.active_appointments("anna", T0 + HOUR - minute, T0 + 2 * HOUR)] == [appt.id]
        assert [a.id for a in await tx.active_appointments("anna", T0 + minute, T0 + 2 * minute)] == [appt.id]
        assert await tx.count_active_between("anna", T0 - HOUR, T0 + 2 * HOUR) == 1
        assert await tx.count_active_between("anna", T0 + HOUR, T0 + 2 * HOUR) == 0
        assert await tx.count_active_between("piotr", T0, T0 + HOUR) == 1


async def test_known_uids_cover_every_status(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        live = await book(tx, client_id, T0)
        gone = await book(tx, client_id, T0 + HOUR)
        await tx.transition(gone, Status.CANCELLED, actor="client:100", at=T0)
        later = await book(tx, client_id, T0 + 5 * HOUR)
        other = await book(tx, client_id, T0, specialist="piotr")
    async with store.tx() as tx:
        assert await tx.known_uids("anna", T0, T0 + 2 * HOUR) == {live.uid, gone.uid}
        assert await tx.known_uids("anna", T0 + 2 * HOUR, T0 + 5 * HOUR) == set()
        assert await tx.known_uids("anna", T0, T0 + 6 * HOUR) == {live.uid, gone.uid, later.uid}
        assert other.uid not in await tx.known_uids("anna", T0 - HOUR, T0 + 6 * HOUR)


async def test_due_expiries(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        due = await book(tx, client_id, T0, expires_at=T0 - HOUR)
        on_time = await book(tx, client_id, T0 + HOUR, expires_at=T0 - HOUR / 2)
        await book(tx, client_id, T0 + 2 * HOUR, expires_at=T0)
        await book(tx, client_id, T0 + 3 * HOUR)  # no expiry
        answered = await book(tx, client_id, T0 + 4 * HOUR, expires_at=T0 - 2 * HOUR)
        await tx.transition(answered, Status.CONFIRMED, actor="specialist:anna", at=T0 - 3 * HOUR)
    async with store.tx() as tx:
        assert [a.id for a in await tx.due_expiries(T0 - HOUR / 2)] == [due.id, on_time.id]
        assert await tx.due_expiries(T0 - 2 * HOUR) == []


async def test_client_appointments_and_last_specialist(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        other_client = await new_client(tx, telegram_id=200)
        assert await tx.last_specialist(client_id) is None
        past = await book(tx, client_id, T0 - 48 * HOUR, specialist="piotr")
        future = await book(tx, client_id, T0 + 48 * HOUR, specialist="anna")
        running = await book(tx, client_id, T0 - HOUR / 2, specialist="ewa")
        await book(tx, other_client, T0 + 72 * HOUR, specialist="zofia")
    async with store.tx() as tx:
        assert [a.id for a in await tx.client_appointments(client_id)] == [past.id, running.id, future.id]
        assert [a.id for a in await tx.client_appointments(client_id, upcoming_from=T0)] == [
            running.id,
            future.id,
        ]
        assert await tx.last_specialist(client_id) == "anna"
        await tx.transition(future, Status.DECLINED, actor="specialist:1", at=T0)
    async with store.tx() as tx:
        # A declined request does not make Anna the client's specialist: the latest visit still standing does.
        assert await tx.last_specialist(client_id) == "ewa"
    async with store.quick() as q:  # the hot path's reading of the same
        assert (await q.last_specialist(client_id), await q.last_specialist(other_client)) == ("ewa", "zofia")


async def test_request_message_and_unsent_requests(store: Store) -> None:
    created = T0 - timedelta(days=1)  # what book() records
    async with store.tx() as tx:
        client_id = await new_client(tx)
        sent, unsent, decided = [await book(tx, client_id, T0 + i * HOUR) for i in range(3)]
        await tx.transition(decided, Status.CANCELLED, actor="client:100", at=T0)
        await tx.set_request_message(sent.id, 5_000_000_000, 77)
    async with store.tx() as tx:
        stored = await tx.get_appointment(sent.id)
        assert await tx.unsent_requests(created - timedelta(seconds=1)) == []
        waiting = await tx.unsent_requests(created)
    assert stored is not None and (stored.request_chat_id, stored.request_message_id) == (5_000_000_000, 77)
    assert [a.id for a in waiting] == [unsent.id]


async def test_appointment_client_is_usable_after_the_transaction(store: Store) -> None:
    async with store.tx() as tx:
        created = await book(tx, await new_client(tx, telegram_id=7), T0)
    async with store.tx() as tx:
        by_id = await tx.get_appointment(created.id, for_update=True)
        [listed] = await tx.active_appointments("anna", T0, T0 + HOUR)
    assert by_id is not None
    assert {created.client.telegram_id, by_id.client.telegram_id, listed.client.telegram_id} == {7}
    with pytest.raises(LookupError):
        async with store.tx() as tx:
            await book(tx, 999, T0)


# drafts


async def test_drafts_round_trip_upsert_and_delete(store: Store) -> None:
    chat = -1_001_234_567_890  # group chats have large negative ids
    async with store.tx() as tx:
        assert await tx.get_draft(chat) is None
        await tx.save_draft(chat, {"step": "service", "picked": ["centre"], "name": "Zażółć"}, None, at=T0)
    async with store.tx() as tx:
        draft = await tx.get_draft(chat)
        assert draft is not None and draft.data == {"step": "service", "picked": ["centre"], "name": "Zażółć"}
        assert draft.message_id is None and draft.updated_at == T0
        await tx.save_draft(chat, {"step": "slot"}, 314, at=T0 + HOUR)
    async with store.tx() as tx:
        draft = await tx.get_draft(chat)
        assert draft is not None and (draft.data, draft.message_id) == ({"step": "slot"}, 314)
        assert draft.updated_at == T0 + HOUR
        await tx.delete_draft(chat)
    async with store.tx() as tx:
        assert await tx.get_draft(chat) is None


async def test_quick_transactions_see_and_write_what_the_orm_ones_do(store: Store) -> None:
    async with store.quick() as q:
        assert await q.client_by_telegram(4242) is None
        created = await q.first_contact(4242, "pl", at=T0)
    async with store.tx() as tx:
        loaded = await tx.client_by_telegram(4242)
        await tx.upsert_client(4242, name="Ona", at=T0 + HOUR)
    assert loaded is not None and (created.id, created.language, created.created_at) == (loaded.id, "pl", T0)
    async with store.quick() as q:
        client = await q.client_by_telegram(4242)
        again = await q.first_contact(4242, "pl", at=T0 + 2 * HOUR)  # a concurrent first contact: the same record
    assert client is not None and (client.name, again.id, again.name) == ("Ona", created.id, "Ona")
    async with store.tx() as tx:
        assert (await tx.get_client(client.id)) is not None  # a detached record, usable like a loaded one
    async with store.quick() as q:
        await q.save_draft(77, {"step": "time", "avoid": ["ann"]}, None, at=T0)
        await q.draft_message(77, 315, at=T0 + HOUR)
    async with store.tx() as tx:
        draft = await tx.get_draft(77)
        assert draft is not None and (draft.data, draft.message_id) == ({"step": "time", "avoid": ["ann"]}, 315)
        assert draft.updated_at == T0 + HOUR  # still counts as in use for the privacy purge
        await tx.delete_draft(77)
    async with store.quick() as q:
        assert await q.get_draft(77) is None



async def test_a_quick_transaction_that_raises_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.quick() as q:
            await q.save_draft(78, {"step": "time"}, 316, at=T0)
            raise RuntimeError("the step failed")
    async with store.quick() as q:
        assert await q.get_draft(78) is None
        await q.save_draft(78, {"step": "day"}, None, at=T0)  # and the connection is as good as new
    async with store.tx() as tx:
        assert (await tx.get_draft(78)).data == {"step": "day"}


async def test_hot_statements_read_what_sqlalchemy_reads(store: Store) -> None:
    """A Send's checks run past SQLAlchemy on SQLite: same rows, same types (aware UTC, statuses), IN lists too."""
    async with store.tx() as tx:
        client_id = await new_client(tx)
        await book(tx, client_id, T0, specialist="anna")
        declined = await book(tx, client_id, T0 + HOUR, specialist="anna")
        await tx.transition(declined, Status.DECLINED, actor="specialist:1", at=T0)
        await book(tx, client_id, T0 + 2 * HOUR, specialist="ewa")
    window = {"spec": "anna", "start": T0 - HOUR, "end": T0 + 3 * HOUR}
    async with store.tx() as tx:
        by_sqlalchemy = [tuple(r) for r in await tx.session.execute(store_module._ACTIVE_TIMES, window)]
        hot = [tuple(r) for r in await tx.active_times("anna", T0 - HOUR, T0 + 3 * HOUR)]
        assert hot == by_sqlalchemy and len(hot) == 1  # the declined request is not active
        assert hot[0][6] == T0 and hot[0][6].tzinfo is not None
        assert len(await tx.known_uids("anna", T0 - HOUR, T0 + 3 * HOUR)) == 2  # whatever their status


# outbox


async def test_enqueue_coalesces_pending_rows(store: Store) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        appt = await book(tx, client_id, T0)
        other = await book(tx, client_id, T0 + HOUR)
        await tx.enqueue_sync(appt.id, "anna", T0)
        await tx.enqueue_sync(appt.id, "anna", T0 + timedelta(seconds=5))
        await tx.enqueue_sync(other.id, "anna", T0)
    async with store.tx() as tx:
        [row] = await tx.outbox_pending(appt.id)
        assert row.next_attempt_at == T0 + timedelta(seconds=5)
        assert len(await tx.outbox_pending()) == 2
        leased = await tx.claim_due(T0 + timedelta(seconds=5))
        assert sorted(r.appointment_id for r in leased) == [appt.id, other.id]
        [claimed] = [r for r in leased if r.appointment_id == appt.id]
        assert claimed.id == row.id
        # A worker holds the row now: a newer change must not be folded into it.
        await tx.enqueue_sync(appt.id, "anna", T0 + timedelta(seconds=6))
        assert len(await tx.outbox_pending(appt.id)) == 2
        await tx.outbox_done(claimed.id, T0 + timedelta(seconds=7))
        [follow_up] = await tx.outbox_pending(appt.id)
        assert follow_up.id != claimed.id


async def test_a_claimed_row_is_never_merged_into_even_after_its_lease(store: Store) -> None:
    """The expiry's change arrives hours later by the clock while the worker still holds the row."""
    async with store.tx() as tx:
        appt = await book(tx, await new_client(tx), T0)
        await tx.enqueue_sync(appt.id, "anna", T0)
        [held] = await tx.claim_due(T0)
        await tx.enqueue_sync(appt.id, "anna", T0 + timedelta(hours=25))
        assert len(await tx.outbox_pending(appt.id)) == 2
        await tx.outbox_done(held.id, T0 + timedelta(hours=25))
        [follow_up] = await tx.outbox_pending(appt.id)
        assert follow_up.id != held.id and follow_up.next_attempt_at == T0 + timedelta(hours=25)


async def test_claim_skips_rows_of_an_appointment_in_flight(store: Store) -> None:
    async with store.tx() as tx:
        appt = await book(tx, await new_client(tx), T0)
        await tx.enqueue_sync(appt.id, "anna", T0)
        [first] = await tx.claim_due(T0)
        await tx.enqueue_sync(appt.id, "anna", T0)
        assert await tx.claim_due(T0 + timedelta(seconds=1)) == []
        await tx.outbox_done(first.id, T0 + timedelta(seconds=2))
        [second] = await tx.claim_due(T0 + timedelta(seconds=2))
        assert second.id != first.id


async def test_claim_exclusive_between_processes(store: Store, db_url: str) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
        for hour in range(12):
            appt = await book(tx, client_id, T0 + hour * HOUR)
            await tx.enqueue_sync(appt.id, "anna", T0)

    async def claim(s: Store) -> list[int]:
        async with s.tx() as tx:
            rows = await tx.claim_due(T0, limit=8)
            await asyncio.sleep(0.05)  # keep the transaction open while the other claims
            return [r.id for r in rows]

    async with second_store(db_url) as other:
        a, b = await asyncio.gather(claim(store), claim(other))
        assert set(a).isdisjoint(b)
        assert len(a) + len(b) == 12
        # Leases hold until they run out, then the rows are free again.
        async with other.tx() as tx:
            assert await tx.claim_due(T0 + timedelta(seconds=59)) == []
            assert len(await tx.claim_due(T0 + timedelta(seconds=60), limit=50)) == 12


async def test_done_rows_are_not_claimed_again(store: Store) -> None:
    async with store.tx() as tx:
        appt = await book(tx, await new_client(tx), T0)
        await tx.enqueue_sync(appt.id, "anna", T0)
        [row] = await tx.claim_due(T0)
        await tx.outbox_done(row.id, T0 + timedelta(seconds=1))
    async with store.tx() as tx:
        assert await tx.claim_due(T0 + timedelta(days=1)) == []
        assert await tx.outbox_pending() == []
        # New work for the same appointment gets a new row; the done one stays done.
        await tx.enqueue_sync(appt.id, "anna", T0 + HOUR)
        [fresh] = await tx.claim_due(T0 + HOUR)
    assert fresh.id != row.id


async def test_failure_backoff_grows_and_is_capped(store: Store) -> None:
    async with store.tx() as tx:
        appt = await book(tx, await new_client(tx), T0)
        await tx.enqueue_sync(appt.id, "anna", T0)
    now = T0
    delays: list[timedelta] = []
    for _ in range(12):
        async with store.tx() as tx:
            [row] = await tx.claim_due(now)
            next_at = await tx.outbox_failed(row.id, now, "CalendarUnavailable: 503 " + "x" * 1000)
            # Not due before the backoff, the lease is cleared.
            assert await tx.claim_due(next_at - timedelta(milliseconds=1)) == []
        delays.append(next_at - now)
        now = next_at
    assert timedelta(seconds=4.5) <= delays[0] <= timedelta(seconds=5)
    assert all(later > earlier for earlier, later in itertools.pairwise(delays[:8]))
    assert all(d <= RETRY_MAX for d in delays)
    assert delays[-1] >= RETRY_MAX * 0.9
    async with store.tx() as tx:
        [row] = await tx.outbox_pending(appt.id)
    assert row.attempts == 12 and row.locked_until is None and row.done_at is None
    assert row.last_error is not None and len(row.last_error) == 500


# per-specialist serialisation


async def _check_then_book(s: Store, client_id: int, start: datetime, *, lock: bool) -> bool:
    async with s.tx() as tx:
        if lock:
            await tx.lock_specialist("anna")
        clash = await tx.active_appointments("anna", start, start + HOUR)
        # Widen the gap between check and insert, as a calendar re-read would.
        await asyncio.sleep(0.2)
        if clash:
            return False
        await book(tx, client_id, start)
        return True


@pytest.mark.parametrize("lock", [True, False], ids=["locked", "unlocked-control"])
async def test_lock_specialist_serialises_check_then_book(store: Store, db_url: str, lock: bool) -> None:
    async with store.tx() as tx:
        client_id = await new_client(tx)
    async with second_store(db_url) as other:
        results = await asyncio.gather(
            _check_then_book(store, client_id, T0, lock=lock),
            _check_then_book(other, client_id, T0 + HOUR / 2, lock=lock),
        )
    async with store.tx() as tx:
        booked = await tx.active_appointments("anna", T0 - HOUR, T0 + 2 * HOUR)
    if lock:
        assert sorted(results) == [False, True] and len(booked) == 1
    else:
        # Without the lock both see a free slot: proves the test really interleaves them.
        assert results == [True, True] and len(booked) == 2


async def test_lock_specialist_does_not_block_other_specialists(store: Store, db_url: str) -> None:
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one write lock for the whole file")
    async with store.tx() as tx:
        await tx.lock_specialist("anna")
        async with second_store(db_url) as other, other.tx() as other_tx:
            await asyncio.wait_for(other_tx.lock_specialist("piotr"), timeout=5)


async def test_reminders_go_out_once_per_lead(store: Store) -> None:
    async with store.tx() as tx:
        client_id = (await tx.upsert_client(77, name="R")).id
        appt = await book(tx, client_id, T0 + 3 * HOUR)
        await tx.transition(appt, Status.CONFIRMED, actor="specialist:x", at=T0)
    leads = [24 * 60, 120]
    async with store.tx() as tx:
        ((due, due_leads),) = await tx.due_reminders(T0, leads)
        assert due.id == appt.id and due_leads == [1440]
        assert await tx.mark_reminded(appt.id, 1440, T0) is True
        assert await tx.mark_reminded(appt.id, 1440, T0) is False  # a second process loses
        assert await tx.due_reminders(T0, leads) == []
    async with store.tx() as tx:
        ((_, due_leads),) = await tx.due_reminders(T0 + 1.5 * HOUR, leads)
        assert due_leads == [120, 1440]
