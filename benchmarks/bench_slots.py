"""Slot engine timing: a 30-day view of one specialist with 2,000 busy intervals.

Run: .venv/bin/python -m benchmarks.bench_slots
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

from scheduling.config import parse_practice
from scheduling.model import Busy
from scheduling.slots import days_with_slots, free_slots


def main() -> None:
    practice = parse_practice(
        {
            "practice": {"name": "Benchmark", "timezone": "Europe/Warsaw"},
            "locations": [{"id": "office", "name": "Office"}],
            "services": [{"id": "svc", "name": "Session", "duration": 50, "buffer_after": 10}],
            "specialists": [
                {
                    "id": "s1",
                    "name": "Specialist",
                    "services": ["svc"],
                    "min_notice_hours": 0,
                    "schedule": [
                        {"weekday": d, "start": "08:00", "end": "20:00", "location": "office"}
                        for d in ("mon", "tue", "wed", "thu", "fri")
                    ],
                }
            ],
        }
    )
    rng = random.Random(1)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    busy = []
    for _ in range(2000):
        start = base + timedelta(minutes=5 * rng.randrange(30 * 24 * 12))
        busy.append(Busy(start, start + timedelta(minutes=rng.choice((5, 10, 15)))))
    kwargs = {
        "service_id": "svc",
        "location_id": "office",
        "specialist_ids": ["s1"],
        "first_day": date(2026, 3, 1),
        "last_day": date(2026, 3, 30),
        "busy": {"s1": busy},
        "now": base,
    }
    for name, fn in (("free_slots", free_slots), ("days_with_slots", days_with_slots)):
        runs = []
        for _ in range(50):
            started = time.perf_counter()
            result = fn(practice, **kwargs)
            runs.append(time.perf_counter() - started)
        print(f"{name}: {len(result)} results, median {statistics.median(runs) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
