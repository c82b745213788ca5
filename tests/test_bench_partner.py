"""The partner benchmark still runs end to end: bookings go through, a race admits one per slot, no overlaps."""

from __future__ import annotations

from benchmarks.bench_partner import run


async def test_small_partner_run_has_no_double_bookings() -> None:
    report = await run(bookings=12, concurrency=4, race_slots=3, race_posts=12)

    assert report.statuses[201] == report.bookings == 12
    assert report.race_slots == 3
    assert report.race[201] == 3 and report.race[409] == 9
    assert report.overlaps is not None and report.overlaps.found == 0
    assert report.overlaps.active == report.overlaps.events == 15
    assert report.ok
    text = "\n".join(report.lines())
    assert "bookings/s" in text and "double bookings in the database: 0, in the calendars: 0" in text
