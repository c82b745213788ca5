"""Partner bookings over HTTP: bookings per second and latency on one process, and a race for a few slots.

The real web application (partner API mounted beside the health check and feeds) serves on a loopback
port; the whole bot runs behind it (embedded Radicale, the outbox, SQLite or PostgreSQL). A partner
books distinct free slots with a few requests in flight, then 50 POSTs race for 10 slots that each have
one free specialist: exactly 10 must win, and neither the database nor the calendars may show an overlap.

Run: .venv/bin/python -m benchmarks.bench_partner [--bookings 200] [--concurrency 8] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from benchmarks.bench_booking import EXAMPLE, START, Overlaps, _percentile, double_bookings
from bot.local import local_bot
from bot.settings import Settings
from bot.web import make_web_app
from scheduling.config import Practice, parse_practice
from tgemu import BotApiEmulator

KEY_ENV = "BOOKINGBOT_BENCH_PARTNER_KEY"
# Slot queries span at most 31 days; together these reach Anna's 60-day horizon.
RANGES = (("2026-12-01", "2026-12-31"), ("2027-01-01", "2027-01-28"))
SLOT_HOLD = timedelta(minutes=60)  # "first": 50 minutes and a 10-minute buffer


def partner_practice() -> Practice:
    """The example practice with every window open to one partner too, and that partner's rules."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for spec, telegram_id in zip(data["specialists"], (9001, 9002), strict=True):
        spec["telegram_id"] = telegram_id
        for window in spec["schedule"]:
            window["booking"] = ["clients", "partner:bench"]
    data["partners"] = [
        {
            "id": "bench",
            "name": "Benchmark Insurance",
            "label": "Consultation for insured clients",
            "key_envs": [KEY_ENV],
            "services": [s["id"] for s in data["services"]],
            "rate_limit_per_minute": 1_000_000,
        }
    ]
    return parse_practice(data)


@dataclass
class Report:
    database: str
    bookings: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    race_slots: int = 0
    race_posts: int = 0
    race: Counter[int] = field(default_factory=Counter)
    overlaps: Overlaps | None = None

    @property
    def ok(self) -> bool:
        return (
            self.overlaps is not None
            and self.overlaps.found == 0
            and self.race[201] == self.race_slots
            and self.race[409] == self.race_posts - self.race_slots
            and self.statuses[201] == self.bookings
        )

    def lines(self) -> list[str]:
        ms = [x * 1000 for x in self.latencies]
        out = [
            f"database: {self.database}",
            f"partner bookings: {self.statuses[201]} of {self.bookings} in {self.seconds:.2f} s = "
            f"{self.statuses[201] / self.seconds:.1f} bookings/s",
            f"POST /api/v1/bookings latency: p50 {_percentile(ms, 50):.0f} ms, p95 {_percentile(ms, 95):.0f} ms, "
            f"max {max(ms):.0f} ms",
            f"race: {self.race_posts} concurrent POSTs for {self.race_slots} slots -> "
            + ", ".join(f"{n} x {status}" for status, n in sorted(self.race.items())),
        ]
        if self.overlaps is not None:
            out.append(
                f"double bookings in the database: {self.overlaps.database}, in the calendars: "
                f"{self.overlaps.calendar} ({self.overlaps.active} active appointments, {self.overlaps.events} events)"
            )
        out.append("OK" if self.ok else "FAILED")
        return out


def _body(slot: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "service": "first",
        "start": slot["start"],
        "channel": slot["channels"][0],
        "location": slot["location"]["id"],
        "client": {"name": "Benchmark Client", "phone": f"+48601{n:06d}", "reference": f"B-{n}"},
    }


def _apart(slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slots of which no two hold the same specialist at once (start plus visit and buffer)."""
    busy_until: dict[str, datetime] = {}
    chosen = []
    for slot in sorted(slots, key=lambda s: s["start"]):
        start = datetime.fromisoformat(slot["start"])
        spec = slot["specialists"][0]["id"]
        if spec not in busy_until or start >= busy_until[spec]:
            chosen.append(slot)
            busy_until[spec] = start + SLOT_HOLD
    return chosen


async def _post(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, float]:
    started = time.perf_counter()
    resp = await http.post("/api/v1/bookings", json=body)
    return resp.status_code, time.perf_counter() - started


async def run(
    bookings: int = 200,
    concurrency: int = 8,
    race_slots: int = 10,
    race_posts: int = 50,
    database_url: str | None = None,
) -> Report:
    """Book through the API and race for slots; returns the figures and the double-booking check."""
    key = secrets.token_urlsafe(32)
    os.environ[KEY_ENV] = key
    report = Report("PostgreSQL" if database_url and database_url.startswith("postgres") else "SQLite")
    with tempfile.TemporaryDirectory(prefix="bench-partner-") as tmp:
        async with (
            BotApiEmulator() as emulator,
            local_bot(
                Path(tmp),
                emulator,
                partner_practice(),
                clock=lambda: START,
                database_url=database_url,
                sweep_seconds=None,
            ) as (runtime, app),
        ):
            runner = web.AppRunner(make_web_app(runtime, app, Settings(data_dir=Path(tmp) / "web")))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            headers = {"Authorization": f"Bearer {key}"}
            limits = httpx.Limits(max_connections=race_posts + concurrency)
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120, limits=limits
                ) as http:
                    slots = []
                    for first, last in RANGES:
                        resp = await http.get("/api/v1/slots", params={"service": "first", "from": first, "to": last})
                        resp.raise_for_status()
                        slots += [s for s in resp.json()["slots"] if len(s["specialists"]) == 1]
                    # Starts only one specialist can take, none overlapping another: each admits one booking.
                    chosen = _apart(slots)
                    single = chosen[::2][:race_slots]
                    report.race_slots, report.race_posts = len(single), race_posts
                    # The race first: every slot wanted by several POSTs at once.
                    race = [_body(single[i % len(single)], 900_000 + i) for i in range(race_posts)]
                    results = await asyncio.gather(*(_post(http, body) for body in race))
                    report.race.update(status for status, _ in results)
                    # Then the throughput run on the others, `concurrency` requests in flight.
                    free = [s for s in chosen if s not in single]
                    todo = [_body(slot, n) for n, slot in enumerate(free[:bookings])]
                    report.bookings = len(todo)
                    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                    for body in todo:
                        queue.put_nowait(body)

                    async def worker() -> None:
                        while not queue.empty():
                            status, seconds = await _post(http, queue.get_nowait())
                            report.statuses[status] += 1
                            report.latencies.append(seconds)

                    started = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
                    report.seconds = time.perf_counter() - started
                await _drained(runtime)
                report.overlaps = await double_bookings(runtime.store, runtime.practice, runtime.accounts)
            finally:
                await runner.cleanup()
    return report


async def _drained(runtime: Any) -> None:
    """Wait until every calendar write the bookings queued has been done."""
    for _ in range(6000):
        async with runtime.store.tx() as tx:
            if not await tx.outbox_pending():
                return
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=200, help="bookings in the throughput run (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--race-slots", type=int, default=10)
    parser.add_argument("--race-posts", type=int, default=50)
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL (or SQLite) database instead of a fresh SQLite file"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.bookings, args.concurrency, args.race_slots, args.race_posts, args.database_url))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
