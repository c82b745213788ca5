"""The gateway against real Radicale and Xandikos: writes, incremental reads, conflicts, outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from caldav_bridge.gateway import CalDAVGateway
from caldav_bridge.ical import from_ical
from scheduling.calendar import CalendarUnavailable
from tests.fixtures.caldav import (
    GATEWAY_NOW,
    CalDAVServer,
    account_of,
    delete_raw,
    event_spec,
    free_port,
    get_raw,
    practice_for,
    put_raw,
)

NOW = GATEWAY_NOW
TRICKY = str(event_spec().description)


def other_event(uid: str, start: str, end: str, extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
        f"SUMMARY:Dentist\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def test_round_trip_create_update_remove(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    first = event_spec()
    await gateway.put("ana", first)
    stored = get_raw(caldav_server, "appt-1@bookingbot.ics")
    assert stored.status_code == 200
    assert from_ical(stored.text) == first
    text = stored.text
    assert "DTSTART;TZID=Europe/Warsaw:20260330T100000" in text
    assert "BEGIN:VTIMEZONE" in text and "ORGANIZER" not in text and "ATTENDEE" not in text

    moved = event_spec(
        status="CONFIRMED",
        sequence=1,
        start=datetime(2026, 3, 30, 9, 0, tzinfo=UTC),
        end=datetime(2026, 3, 30, 9, 50, tzinfo=UTC),
    )
    await gateway.put("ana", moved)
    back = from_ical(get_raw(caldav_server, "appt-1@bookingbot.ics").text)
    assert back == moved

    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True)
    assert [(b.start, b.uid) for b in busy] == [(moved.start, moved.uid)]

    await gateway.remove("ana", moved.uid)
    assert get_raw(caldav_server, "appt-1@bookingbot.ics").status_code == 404
    await gateway.remove("ana", moved.uid)  # already gone is success
    assert await gateway.busy("ana", NOW, NOW + timedelta(days=30), fresh=True) == []


async def test_put_keeps_sequence_as_given(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    await gateway.put("ana", event_spec(sequence=0))
    ev = Calendar.from_ical(get_raw(caldav_server, "appt-1@bookingbot.ics").text).walk("VEVENT")[0]
    assert int(ev["SEQUENCE"]) == 0
    assert str(ev["X-BOOKINGBOT-ID"]) == "42"


async def test_incremental_refresh_sees_other_clients(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    end = NOW + timedelta(days=30)
    assert await gateway.busy("ana", NOW, end) == []
    await gateway.settled()  # the rest of the horizon and the sync token, read after the first view
    put_raw(caldav_server, "other.ics", other_event("other-1", "20260325T100000Z", "20260325T110000Z"))

    before = gateway.requests
    assert await gateway.busy("ana", NOW, end) == []  # within ttl: the cache answers, no request
    assert gateway.requests == before

    busy = await gateway.busy("ana", NOW, end, fresh=True)
    assert [(b.uid, b.label) for b in busy] == [("other-1", "Dentist")]
    # sync-collection and one multiget of the changed object, not a full re-read
    assert gateway.requests - before == 2

    delete_raw(caldav_server, "other.ics")
    assert await gateway.busy("ana", NOW, end, fresh=True) == []


async def test_expired_sync_token_falls_back_to_full_read(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    end = NOW + timedelta(days=30)
    await gateway.busy("ana", NOW, end)
    cache = gateway._states["ana"].booking
    cache.sync_token = cache.sync_token + "-gone" if cache.sync_token else "http://example/bad-token"
    put_raw(caldav_server, "other.ics", other_event("other-2", "20260325T100000Z", "20260325T110000Z"))
    busy = await gateway.busy("ana", NOW, end, fresh=True)
    assert [b.uid for b in busy] == ["other-2"]


async def test_concurrent_edit_is_reread_and_their_property_kept(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    await gateway.put("ana", event_spec())
    # Someone edits the event in their calendar app after we cached its etag.
    text = get_raw(caldav_server, "appt-1@bookingbot.ics").text
    edited = text.replace("END:VEVENT", "X-THEIR-NOTE:bring umbrella\r\nEND:VEVENT").replace(
        "SUMMARY:", "SUMMARY:Edited "
    )
    put_raw(caldav_server, "appt-1@bookingbot.ics", edited)

    await gateway.put("ana", event_spec(status="CONFIRMED", sequence=1))
    stored = get_raw(caldav_server, "appt-1@bookingbot.ics").text
    ev = Calendar.from_ical(stored).walk("VEVENT")[0]
    assert str(ev["X-THEIR-NOTE"]) == "bring umbrella"
    assert str(ev["STATUS"]) == "CONFIRMED" and int(ev["SEQUENCE"]) == 1
    assert str(ev["SUMMARY"]) == event_spec().summary


async def test_remove_after_their_edit(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    await gateway.put("ana", event_spec())
    text = get_raw(caldav_server, "appt-1@bookingbot.ics").text
    put_raw(caldav_server, "appt-1@bookingbot.ics", text.replace("END:VEVENT", "X-A:b\r\nEND:VEVENT"))
    await gateway.remove("ana", "appt-1@bookingbot")  # the cached etag is stale: 412, re-read, delete
    assert get_raw(caldav_server, "appt-1@bookingbot.ics").status_code == 404


async def test_create_when_it_already_exists_updates(gateway: CalDAVGateway, caldav_server: CalDAVServer) -> None:
    put_raw(
        caldav_server, "appt-1@bookingbot.ics", other_event("appt-1@bookingbot", "20260101T100000Z", "20260101T110000Z")
    )
    await gateway.put("ana", event_spec(sequence=2))
    assert from_ical(get_raw(caldav_server, "appt-1@bookingbot.ics").text) == event_spec(sequence=2)


async def test_server_down_raises_unavailable(caldav_server: CalDAVServer) -> None:
    dead = CalDAVServer("dead", f"http://127.0.0.1:{free_port()}/", "", "", "x", "", "")
    gw = CalDAVGateway(practice_for(dead), accounts={"ana": account_of(dead)}, timeout=2)
    await gw.start()  # an unreachable server stops nobody: Ana is unavailable and tried again in the background
    try:
        assert "ana" in gw.unavailable
        with pytest.raises(CalendarUnavailable, match="ana"):
            await gw.busy("ana", datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC))
    finally:
        await gw.close()
    assert gw.unavailable == {}


async def test_first_view_reads_its_window_alone_and_the_rest_follows(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    put_raw(caldav_server, "near.ics", other_event("near", "20260325T100000Z", "20260325T110000Z"))
    put_raw(caldav_server, "far.ics", other_event("far", "20260510T100000Z", "20260510T110000Z"))
    before = gateway.requests
    busy = await gateway.busy("ana", NOW, NOW + timedelta(days=7))
    assert [b.uid for b in busy] == ["near"]
    assert gateway.requests - before == 1  # one time-range REPORT of the week, as a plain client would send
    cache = gateway._states["ana"].booking
    assert cache.partial and cache.sync_token is None

    await gateway.settled()
    assert not cache.partial and cache.sync_token
    before = gateway.requests
    far = await gateway.busy("ana", NOW, NOW + timedelta(days=59))
    assert [b.uid for b in far] == ["near", "far"] and gateway.requests == before  # from the cache


async def test_fresh_read_of_a_first_view_reads_the_server_again(caldav_server: CalDAVServer) -> None:
    gw = CalDAVGateway(
        practice_for(caldav_server), accounts={"ana": account_of(caldav_server)}, clock=lambda: NOW, fill_delay=60
    )
    await gw.start()
    try:
        assert await gw.busy("ana", NOW, NOW + timedelta(days=7)) == []
        put_raw(caldav_server, "late.ics", other_event("late", "20260325T100000Z", "20260325T110000Z"))
        # No sync state yet: a fresh read reads the whole horizon with its token instead of trusting the window.
        busy = await gw.busy("ana", NOW, NOW + timedelta(days=7), fresh=True)
        assert [b.uid for b in busy] == ["late"]
        cache = gw._states["ana"].booking
        assert not cache.partial and cache.sync_token
    finally:
        # The background fill, still waiting, is cancelled; it would have found the work done.
        await gw.close()


async def test_an_update_nobody_else_touched_is_one_request(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    await gateway.busy("ana", NOW, NOW + timedelta(days=30))
    await gateway.settled()
    before = gateway.requests
    await gateway.put("ana", event_spec())
    assert gateway.requests - before == 1  # PUT If-None-Match
    before = gateway.requests
    await gateway.put("ana", event_spec(status="CONFIRMED", sequence=1))
    assert gateway.requests - before == 1  # PUT If-Match with the etag the create answered, no GET
    assert from_ical(get_raw(caldav_server, "appt-1@bookingbot.ics").text) == event_spec(status="CONFIRMED", sequence=1)

    # The fresh read lists our write with the etag we hold: no multiget, and it now counts as seen.
    before = gateway.requests
    times = await gateway.appointment_times("ana", ["appt-1@bookingbot"])
    assert gateway.requests - before == 1
    assert times["appt-1@bookingbot"] == (event_spec().start, event_spec().end)


async def test_another_process_updating_an_event_it_never_read_reads_it_first(
    gateway: CalDAVGateway, caldav_server: CalDAVServer
) -> None:
    await gateway.put("ana", event_spec())
    other = CalDAVGateway(practice_for(caldav_server), accounts={"ana": account_of(caldav_server)}, clock=lambda: NOW)
    await other.start()
    try:
        before = other.requests
        await other.put("ana", event_spec(status="CONFIRMED", sequence=1))
        assert other.requests - before == 2  # GET for the etag, PUT If-Match: no refused create first
        assert from_ical(get_raw(caldav_server, "appt-1@bookingbot.ics").text) == event_spec(
            status="CONFIRMED", sequence=1
        )
    finally:
        await other.close()
