"""30-day availability for one specialist with 2,000 calendar events: a plain time-range REPORT of the
window beside the gateway's cold (from the server) and warm (from the cache) views, in the same run.

Run: .venv/bin/python benchmarks/bench_calendar.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from caldav_bridge.busy import object_busy, parse_full
from caldav_bridge.client import CALDAV, DAV, Connection, multistatus, text_of
from caldav_bridge.embedded import EmbeddedAccount, EmbeddedCalDAV
from caldav_bridge.gateway import CalDAVGateway
from scheduling.config import Practice, load_practice
from scheduling.model import Busy
from scheduling.slots import free_slots

EVENTS = 2000
SERIES = 50
ZONE = ZoneInfo("Europe/Warsaw")
ROOT = Path(__file__).resolve().parents[1]


def events(now: datetime) -> list[tuple[str, str]]:
    """2,000 (uid, calendar object) pairs, 50 of them weekly series, from 60 days back to 120 days ahead."""
    rnd = random.Random(7)
    out = []
    for i in range(EVENTS):
        day = now.astimezone(ZONE).date() + timedelta(days=rnd.randint(-60, 120))
        start = datetime(day.year, day.month, day.day, rnd.randint(7, 19), rnd.choice((0, 30)))
        end = start + timedelta(minutes=rnd.choice((30, 50, 60, 90)))
        lines = [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//bookingbot bench//EN",
            "BEGIN:VEVENT",
            f"UID:bench-{i}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID=Europe/Warsaw:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Warsaw:{end:%Y%m%dT%H%M%S}",
            f"SUMMARY:Event {i}",
        ]
        if i < SERIES:
            lines.append(f"RRULE:FREQ=WEEKLY;COUNT={rnd.randint(10, 40)}")
        lines += ["END:VEVENT", "END:VCALENDAR"]
        out.append((f"bench-{i}", "\r\n".join(lines) + "\r\n"))
    return out


def window(now: datetime) -> tuple[datetime, datetime]:
    first = now.astimezone(ZONE).date()
    start = datetime.combine(first, datetime.min.time(), ZONE).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=30), datetime.min.time(), ZONE).astimezone(UTC)
    return start, end


def slots(practice: Practice, now: datetime, busy: list[Busy]) -> int:
    first = now.astimezone(ZONE).date()
    return len(
        free_slots(
            practice,
            service_id="first",
            location_id="centre",
            specialist_ids=["anna"],
            first_day=first,
            last_day=first + timedelta(days=29),
            busy={"anna": busy},
            now=now,
        )
    )


async def view(gw: CalDAVGateway, practice: Practice, now: datetime) -> int:
    start, end = window(now)
    return slots(practice, now, await gw.busy("anna", start, end))


async def plain(
    acc: EmbeddedAccount,
    practice: Practice,
    now: datetime,
    *,
    quick: bool = False,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> int:
    """What any client does without a cache: one time-range REPORT, every object expanded with icalendar."""
    # `quick` reads objects with the bridge's own reader instead, which reads plain events without icalendar.
    start, end = window(now)
    stamp = "%Y%m%dT%H%M%SZ"
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><c:calendar-query xmlns:d="{DAV}" xmlns:c="{CALDAV}">'
        "<d:prop><d:getetag/><c:calendar-data/></d:prop>"
        '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
        f'<c:time-range start="{start:{stamp}}" end="{end:{stamp}}"/>'
        "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
    )
    conn = Connection(acc.url, acc.username, acc.password, timeout=timeout)
    try:
        resp = await conn.report(acc.calendar_url, body)
    finally:
        await conn.close()
    busy: list[Busy] = []
    for href, _, props in multistatus(resp):
        text = text_of(props, f"{{{CALDAV}}}calendar-data")
        if text is not None:
            busy.extend(object_busy(href, text, start, end, ZONE) if quick else parse_full(text, start, end, ZONE))
    busy.sort(key=lambda b: (b.start, b.end))
    return slots(practice, now, busy)


def fill(server: EmbeddedCalDAV, acc: EmbeddedAccount, objects: list[tuple[str, str]]) -> None:
    """Write the objects into Radicale's storage as it would itself (one file per object): a PUT of
    2,000 events takes Radicale over a minute, and the benchmark is about reading them."""
    folder = server.root / "collections" / "collection-root" / unquote(urlsplit(acc.calendar_url).path).strip("/")
    for uid, text in objects:
        (folder / f"{uid}.ics").write_text(text, encoding="utf-8", newline="")


def ms(values: list[float]) -> str:
    low, high = min(values) * 1000, max(values) * 1000
    return f"median {statistics.median(values) * 1000:7.1f} ms (min {low:.1f}, max {high:.1f})"


async def main(runs: int) -> None:
    practice = load_practice(ROOT / "practice.example.toml")
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedCalDAV(tmp, port=0)
        accounts = await server.start(practice)
        try:
            acc = accounts["anna"]
            fill(server, acc, events(now))
            # Radicale builds its item cache on this first read, as it would on an upload.
            await plain(acc, practice, now, timeout=300)
            print(f"{EVENTS} events ({SERIES} recurring) in the calendar; {runs} runs, each: plain x2, cold, warm")
            base: list[float] = []
            base_quick: list[float] = []
            cold: list[float] = []
            warm: list[float] = []
            rest: list[float] = []
            cold_req = warm_req = rest_req = 0
            result = expected = 0
            for _ in range(runs):
                t = time.perf_counter()
                expected = await plain(acc, practice, now)
                base.append(time.perf_counter() - t)
                t = time.perf_counter()
                await plain(acc, practice, now, quick=True)
                base_quick.append(time.perf_counter() - t)

                gw = CalDAVGateway(practice, accounts=accounts)
                await gw.start()
                before = gw.requests
                t = time.perf_counter()
                result = await view(gw, practice, now)
                cold.append(time.perf_counter() - t)
                cold_req = gw.requests - before
                # The rest of the horizon is read in the background; a later view finds it there.
                before = gw.requests
                t = time.perf_counter()
                await gw.settled()
                rest.append(time.perf_counter() - t)
                rest_req = gw.requests - before
                before = gw.requests
                t = time.perf_counter()
                await view(gw, practice, now)
                warm.append(time.perf_counter() - t)
                warm_req = gw.requests - before
                await gw.close()
        finally:
            await server.stop()
    assert result == expected, f"the gateway found {result} free slots, the plain REPORT {expected}"
    print(f"30-day view for one specialist: {result} free slots")
    print(f"plain REPORT of the window, icalendar:    {ms(base)}, 1 HTTP request")
    print(f"plain REPORT of the window, quick reader: {ms(base_quick)}, 1 HTTP request")
    print(f"cold:                                     {ms(cold)}, {cold_req} HTTP requests")
    print(f"warm:                                     {ms(warm)}, {warm_req} HTTP requests")
    print(f"rest of the horizon read in the background after cold: {ms(rest)}, {rest_req} HTTP requests")
    cold_ms = statistics.median(cold)
    print(
        f"cold / plain: {cold_ms / statistics.median(base):.2f} (icalendar), "
        f"{cold_ms / statistics.median(base_quick):.2f} (quick reader)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(main(parser.parse_args().runs))
