"""Erasure and retention in the database (SQLite and PostgreSQL): what goes, what stays anonymous, who is never due."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from scheduling.db import PartnerClientRow
from scheduling.model import Status
from scheduling.privacy import months_before
from scheduling.store import Store

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def test_months_before() -> None:
    assert months_before(datetime(2026, 3, 31, 8, tzinfo=UTC), 1) == datetime(2026, 2, 28, 8, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 24) == datetime(2024, 1, 15, tzinfo=UTC)
    assert months_before(datetime(2026, 5, 31, tzinfo=UTC), 3) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2028, 3, 30, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)


async def _visit(store: Store, client_id: int, start: datetime, status: Status = Status.CONFIRMED) -> int:
    async with store.tx() as tx:
        appt = await tx.add_appointment(
            client_id=client_id,
            specialist_id="anna",
            service_id="first",
            location_id="centre",
            channel="on_site",
            start=start,
            end=start + timedelta(minutes=50),
            note="My health",
            source=None,
            expires_at=None,
            actor="test",
            at=start - timedelta(days=1),
            status=status,
        )
        return appt.id


async def test_erasure_removes_the_personal_fields_and_what_hangs_off_them(store: Store) -> None:
    async with store.tx() as tx:
        client = await tx.upsert_client(77, name="Jan Nowak", phone="+48601234567", email="j@example.org", at=T0)
    appt_id = await _visit(store, client.id, T0)
    async with store.tx() as tx:
        await tx.add_note(client_id=client.id, appointment_id=appt_id, author="specialist:1", text="Anxious", at=T0)
        tx.session.add(PartnerClientRow(partner_id="insurer", client_ref="INS-1", client_id=client.id))
        await tx.record_consent(client.id, "1", T0)
        await tx.save_draft(77, {"note": "typed"}, None, at=T0)
    async with store.tx() as tx:
        row = await tx.get_client(client.id)
        assert row is not None
        await tx.erase_client(row, T0 + timedelta(days=1))
    async with store.tx() as tx:
        row = await tx.get_client(client.id)
        assert row is not None and row.erased_at is not None
        assert (row.name, row.phone, row.email, row.telegram_id, row.language) == (None,) * 5
        assert await tx.notes(client_id=client.id) == []
        assert await tx.client_partner_refs(client.id) == []
        assert await tx.get_draft(77) is None
        assert not await tx.has_consent(client.id, "1")
        (appt,) = await tx.client_appointments(client.id)
        assert appt.note is None and appt.status == Status.CONFIRMED  # the history stays
        assert await tx.client_by_telegram(77) is None  # a new /start is a new client


async def test_retention_is_due_only_long_after_the_last_visit_and_never_for_staff(store: Store) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    cutoff = months_before(now, 6)
    async with store.tx() as tx:
        old = await tx.upsert_client(1, name="Old", at=T0)
        recent = await tx.upsert_client(2, name="Recent", at=T0)
        coming = await tx.upsert_client(3, name="Coming", at=T0)
        staff = await tx.upsert_client(9001, language="en", at=T0)
        never = await tx.upsert_client(4, name="Never booked", at=T0)
    await _visit(store, old.id, T0, Status.COMPLETED)
    await _visit(store, recent.id, now - timedelta(days=30), Status.COMPLETED)
    await _visit(store, coming.id, T0, Status.COMPLETED)
    await _visit(store, coming.id, now + timedelta(days=10))
    async with store.tx() as tx:
        due = await tx.retention_due(cutoff, keep={9001})
    assert sorted(c.id for c in due) == sorted([old.id, never.id])
    assert staff.id not in [c.id for c in due]
    assert date(2026, 6, 1) == cutoff.date()


async def test_feed_generations_count_up_per_specialist(store: Store) -> None:
    async with store.tx() as tx:
        assert await tx.feed_generations() == {} and await tx.feed_generation("anna") == 0
        assert await tx.rotate_feed("anna", T0) == 1
    async with store.tx() as tx:
        assert await tx.rotate_feed("anna", T0) == 2
        assert await tx.feed_generations() == {"anna": 2}


async def test_consents_are_kept_apart_by_kind_and_withdrawn_together(store: Store) -> None:
    async with store.tx() as tx:
        client = await tx.upsert_client(5, at=T0)
        await tx.record_consent(client.id, "2026-01", T0, "terms")
        assert not await tx.has_consent(client.id, "2026-01", "health")
        await tx.record_consent(client.id, "2026-01", T0, "health")
        assert await tx.has_consent(client.id, "2026-01", "health")
        assert await tx.withdraw_consents(client.id, T0) == 2
        assert not await tx.has_consent(client.id, "2026-01")
        assert len(await tx.consents(client.id)) == 2  # the record of them stays
