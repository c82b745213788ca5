"""The workspace's storage on SQLite and PostgreSQL: client search, records merged, notes, history details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduling.model import Status
from scheduling.store import Store, Tx

AT = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


async def _visit(tx: Tx, client_id: int, hour: int, specialist: str = "anna"):  # type: ignore[no-untyped-def]
    start = AT + timedelta(days=2, hours=hour)
    return await tx.add_appointment(
        client_id=client_id,
        specialist_id=specialist,
        service_id="first",
        location_id="centre",
        channel="on_site",
        start=start,
        end=start + timedelta(minutes=50),
        note=None,
        source="staff",
        expires_at=None,
        actor="specialist:9001",
        at=AT,
        status=Status.CONFIRMED,
        flags="asap",
        details={"overridden": ["lead_time"]},
    )


async def test_clients_are_found_by_name_or_digits_with_wildcards_taken_literally(store: Store) -> None:
    async with store.tx() as tx:
        ewa = await tx.add_client_record(
            name="Ewa Zielińska", phone="+48601555444", email=None, created_by="specialist:9001", at=AT
        )
        await tx.add_client_record(name="Jan 100% Nowak", phone="+48601234567", email=None, created_by="x", at=AT)
        await tx.upsert_client(77, language="en")  # someone who only said hello: no name, never listed
    async with store.tx() as tx:
        assert [c.id for c in await tx.find_clients("zielińska")] == [ewa.id]
        assert [c.id for c in await tx.find_clients("555 444")] == [ewa.id]
        assert [c.name for c in await tx.find_clients("100%")] == ["Jan 100% Nowak"]
        assert await tx.find_clients("0_%") == []
        assert len(await tx.find_clients("+48 601")) == 2


async def test_a_record_merged_into_the_bot_client_brings_its_visits_notes_and_details(store: Store) -> None:
    async with store.tx() as tx:
        record = await tx.add_client_record(
            name="Ewa Zielińska", phone="+48601555444", email="ewa@example.org", created_by="specialist:9001", at=AT
        )
        appt = await _visit(tx, record.id, 9)
        await tx.add_note(client_id=record.id, appointment_id=appt.id, author="specialist:9001", text="n", at=AT)
        bot_client = await tx.upsert_client(1003, name="Ewa Zielińska", phone="+48601555444", at=AT)
        assert [r.id for r in await tx.unlinked_records()] == [record.id]
    async with store.tx() as tx:
        await tx.merge_client(record, bot_client, AT)
    async with store.tx() as tx:
        merged = await tx.get_client(bot_client.id)
        assert merged is not None and merged.email == "ewa@example.org" and merged.telegram_id == 1003
        assert await tx.get_client(record.id) is None
        assert [a.id for a in await tx.client_appointments(bot_client.id)] == [appt.id]
        assert [n.text for n in await tx.notes(client_id=bot_client.id)] == ["n"]
        assert await tx.unlinked_records() == []


async def test_history_details_flags_and_reassignment_are_stored(store: Store) -> None:
    async with store.tx() as tx:
        client = await tx.add_client_record(name="A B", phone=None, email=None, created_by="x", at=AT)
        appt = await _visit(tx, client.id, 9)
        await tx.set_appointment(appt, at=AT, reassign_to="jonas")
        await tx.record(appt, actor="specialist:9001", at=AT, details={"reassign_offered_to": "jonas"})
    async with store.tx() as tx:
        # Held for both: the owner's and the colleague's busy time.
        assert [a.id for a in await tx.active_appointments("jonas", AT, AT + timedelta(days=7))] == [appt.id]
        assert [a.id for a in await tx.staff_appointments(["jonas"])] == [appt.id]
        stored = await tx.get_appointment(appt.id)
        assert stored is not None
        await tx.hand_over(stored, "jonas", AT)
    async with store.tx() as tx:
        stored = await tx.get_appointment(appt.id)
        history = await tx.transitions(appt.id)
    assert stored is not None and stored.specialist_id == "jonas" and stored.reassign_to is None
    assert stored.sequence == 1 and stored.flags == "asap"
    assert [h.details for h in history] == [{"overridden": ["lead_time"]}, {"reassign_offered_to": "jonas"}]
