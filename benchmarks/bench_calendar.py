"""30-day availability for one specialist with 2,000 calendar events: cold (from the server) vs warm.

Run: .venv/bin/python benchmarks/bench_calendar.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from caldav_bridge.embedded import EmbeddedCalDAV
from caldav_bridge.gateway import CalDAVGateway
from scheduling.config import Practice, load_practice
from scheduling.slots import free_slots

EVENTS = 2000
SERIES = 50
RUNS = 7
ZONE = ZoneInfo("Europe/Warsaw")


def calendar_text(now: datetime) -> str:
    """2,000 events (50 of them weekly series) spread from 60 days back to 120 days ahead."""
    rnd = random.Random(7)
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bookingbot bench//EN"]
    for i in range(EVENTS):
        day = now.astimezone(ZONE).date() + timedelta(days=rnd.randint(-60, 120))
        start = datetime(day.year, day.month, day.day, rnd.randint(7, 19), rnd.choice((0, 30)))
        end = start + timedelta(minutes=rnd.choice((30, 50, 60, 90)))
        out += [
            "BEGIN:VEVENT",
            f"UID:bench-{i}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID=Europe/Warsaw:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Warsaw:{end:%Y%m%dT%H%M%S}",
            f"SUMMARY:Event {i}",
        ]
        if i < SERIES:
            out.append(f"RRULE:FREQ=WEEKLY;COUNT={rnd.randint(10, 40)}")
        out.append("END:VEVENT")
    out.append("END:VCALENDAR")
    return "\r\n".join(out) + "\r\n"


async def view(gw: CalDAVGateway, practice: Practice, now: datetime) -> int:
    first = now.astimezone(ZONE).date()
    last = first + timedelta(days=29)
    start = datetime.combine(first, datetime.min.time(), ZONE).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), ZONE).astimezone(UTC)
    busy = await gw.busy("anna", start, end)
    slots = free_slots(
        practice,
        service_id="first",
        location_id="centre",
        specialist_ids=["anna"],
        first_day=first,
        last_day=last,
        busy={"anna": busy},
        now=now,
    )
    return len(slots)


ROOT = Path(__file__).resolve().parents[1]


async def main() -> None:
    root = ROOT
    practice = load_practice(root / "practice.example.toml")
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedCalDAV(tmp, port=0)
        accounts = await server.start(practice)
        try:
            acc = accounts["anna"]
            t0 = time.perf_counter()
            # One PUT of a whole calendar: Radicale stores each component as its own object.
            async with httpx.AsyncClient(auth=(acc.username, acc.password), timeout=120) as http:
                r = await http.put(
                    acc.calendar_url,
                    content=calendar_text(now).encode(),
                    headers={"Content-Type": "text/calendar; charset=utf-8"},
                )
                r.raise_for_status()
            print(f"uploaded {EVENTS} events ({SERIES} recurring) in {time.perf_counter() - t0:.2f} s")

            cold: list[float] = []
            warm: list[float] = []
            cold_req = warm_req = 0
            result = 0
            for _ in range(RUNS):
                gw = CalDAVGateway(practice, accounts=accounts)
                await gw.start()
                before = gw.requests
                t = time.perf_counter()
                result = await view(gw, practice, now)
                cold.append(time.perf_counter() - t)
                cold_req = gw.requests - before
                before = gw.requests
                t = time.perf_counter()
                await view(gw, practice, now)
                warm.append(time.perf_counter() - t)
                warm_req = gw.requests - before
                await gw.close()
        finally:
            await server.stop()
    print(f"30-day view for one specialist: {result} free slots")
    print(f"cold: median {statistics.median(cold) * 1000:.1f} ms, {cold_req} HTTP requests")
    print(f"warm: median {statistics.median(warm) * 1000:.2f} ms, {warm_req} HTTP requests")


if __name__ == "__main__":
    asyncio.run(main())
