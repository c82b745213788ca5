"""Erasing a client with a weekly course: the future visits leave the calendar, the past ones stay without them."""

from __future__ import annotations

from icalendar import Calendar

from scheduling.model import Status
from scheduling.privacy import PrivacyService
from tests.fixtures.series import WEEK, Bench, assert_calendar_matches, at, calendar_objects


async def test_erasing_a_client_with_a_series_cancels_the_rest_and_anonymises_the_past(bench: Bench) -> None:
    bench.clock.now = at("2026-03-02", "09:00")
    client = await bench.client()
    async with bench.store.tx() as tx:
        await tx.upsert_client(1, name="Zofia Testowa")
    _series, rows = await bench.series.create(
        bench.request(client, at("2026-03-02", "18:00"), count=4, note="Sleep problems"),
        actor="specialist:500",
        confirmed=True,
    )
    await bench.flush()
    (text,) = calendar_objects(bench.server).values()
    assert "SUMMARY:Therapy: Z. T." in text

    # Two visits took place; two are still to come.
    bench.clock.now = at("2026-03-09", "20:00")
    async with bench.store.tx() as tx:
        for row in rows[:2]:
            appt = await tx.get_appointment(row.id)
            assert appt is not None
            await tx.transition(appt, Status.COMPLETED, actor="specialist:500", at=bench.clock.now)
    done = await PrivacyService(bench.booking).erase(client, actor=f"client:{client}")
    assert sorted(a.id for a in done.cancelled) == sorted(r.id for r in rows[2:])
    assert done.rewritten == 1  # one calendar resource for the whole course

    occurrences = await assert_calendar_matches(bench)
    assert [start for _, start, _ in occurrences] == [rows[0].start, rows[0].start + WEEK]
    (text,) = calendar_objects(bench.server).values()
    event = Calendar.from_ical(text).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "Therapy: Client"
    assert "Z. T." not in text and "Zofia" not in text and "Sleep problems" not in text
    async with bench.store.tx() as tx:
        (kept,) = await tx.client_series(client)
        assert kept.note is None and kept.client.erased_at is not None
