"""The booking benchmark still runs end to end: a small crowd books, nobody is double-booked."""

from __future__ import annotations

from benchmarks.bench_booking import run


async def test_small_crowd_books_without_double_bookings() -> None:
    report = await run(12, approve=True, timeout=60)

    assert not report.timed_out
    assert report.overlaps is not None
    assert report.overlaps.database == 0 and report.overlaps.calendar == 0
    assert report.overlaps.events == report.overlaps.active == report.booked
    assert report.booked >= 1 and report.outcomes["sent"] == report.booked
    assert report.final["booked"] + report.final["full"] == 12  # every client got an answer
    assert report.unanswered == 0 and report.final["failed"] == 0
    assert report.approvals == report.booked
    # An approval rewrites an event nobody touched: one conditional PUT from the cached copy, no GET first.
    assert report.caldav["approve"] == report.approvals
    assert report.caldav["browse"] < report.updates["browse"] / 10  # browsing reads the cache, not the server
    assert report.ok
    text = "\n".join(report.lines())
    assert "double bookings in the database: 0" in text and "updates/s" in text
    assert "CalDAV requests per booking from request to approval" in text
