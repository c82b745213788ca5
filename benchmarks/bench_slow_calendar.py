"""One specialist's calendar server answers every request after 5 s; a hundred of their clients press Send
at once. How quickly are everyone else's taps and /agenda answered meanwhile, and the hundred themselves?

The real bot (bot.local.local_bot) on the Bot API emulator, the embedded Radicale, SQLite; Anna's
calendar is reached through a delaying HTTP proxy, Jonas's directly.

Run: .venv/bin/python -m benchmarks.bench_slow_calendar [--clients 100] [--others 20] [--delay 5] [--profile FILE]

`--profile FILE` writes cProfile statistics of the measured phase alone (read them with `python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from bot.local import local_bot
from caldav_bridge.embedded import EmbeddedAccount, EmbeddedCalDAV
from scheduling.config import Practice, parse_practice
from tests.fixtures.proxy import FaultProxy
from tgemu import BotApiEmulator, TelegramUser

EXAMPLE = Path(__file__).resolve().parents[1] / "practice.example.toml"
START = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 08:00 in Warsaw
ANNA, JONAS = 9001, 9002
CENTRE = ("City centre office", "Individual", "First consultation")


def practice() -> Practice:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["specialists"][0]["telegram_id"] = ANNA
    data["specialists"][1]["telegram_id"] = JONAS
    return parse_practice(data)


def _screen(user: TelegramUser) -> tuple[int, str, list[list[str]]]:
    last = user.messages[-1] if user.messages else None
    return (len(user.messages), last.text if last else "", last.buttons if last else [])


def _offers(user: TelegramUser, label: str) -> bool:
    boards = [m for m in user.messages if m.from_bot and m.buttons]
    return bool(boards) and any(label == b or label in b for row in boards[-1].buttons for b in row)


class _Watch:
    """Checks every waiting condition each 5 ms in one task: a timer per waiter (125 of them) took a tenth of
    the event loop the bot runs on, and the bot's latencies with it."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def until(self, condition: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        if condition():
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((condition, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise TimeoutError("no answer") from None

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(0.005)
            still = []
            for condition, done in self._waiting:
                if done.done():
                    continue
                if condition():
                    done.set_result(None)
                else:
                    still.append((condition, done))
            self._waiting = still


_WATCH = _Watch()


async def _until(condition: Callable[[], bool], timeout: float = 300.0) -> None:  # noqa: ASYNC109
    await _WATCH.until(condition, timeout)


async def timed(user: TelegramUser, act: Callable[[], Awaitable[object]], done: Callable[[], bool]) -> float:
    """Seconds from the action to the answer it waits for."""
    started = time.perf_counter()
    await act()
    await _until(done)
    return time.perf_counter() - started


async def walk(user: TelegramUser, specialist: str, time_label: str | None) -> None:
    """To the summary (time_label given) or to the day picker of `specialist`."""
    labels = [*CENTRE, specialist] + (["2", time_label, "On site", "Skip"] if time_label else [])
    await user.send("/book", wait=False)
    for label in labels:
        await _until(lambda label=label: _offers(user, label))
        await user.tap(label, wait=False)
    if not time_label:
        await _until(lambda: "Choose a day" in _screen(user)[1])
        return
    await _until(lambda: "first and last name" in " ".join(m.text for m in user.messages[-2:]))
    await user.send("Ola Nowak", wait=False)
    await _until(lambda: "phone number" in " ".join(m.text for m in user.messages[-2:]))
    await user.share_contact("48601234568", wait=False)
    for label in ("Skip", "I agree"):
        await _until(lambda label=label: _offers(user, label))
        await user.tap(label, wait=False)
    await _until(lambda: _offers(user, "Send request"))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    return (
        f"{label}: n={len(values)}  p50 {statistics.median(values) * 1000:.0f} ms  "
        f"p95 {_pct(values, 0.95) * 1000:.0f} ms  max {max(values) * 1000:.0f} ms"
    )


async def run(clients: int, others: int, delay: float, profile: str | None = None) -> int:
    logging.basicConfig(level=logging.ERROR)
    p = practice()
    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedCalDAV(Path(tmp) / "caldav", port=0)
        accounts = await embedded.start(p)
        anna = accounts["anna"]
        try:
            base = urlsplit(anna.url)
            origin = f"{base.scheme}://{base.netloc}"
            async with FaultProxy(origin) as proxy:
                through = proxy.url.rstrip("/")
                accounts["anna"] = EmbeddedAccount(
                    anna.url.replace(origin, through),
                    anna.username,
                    anna.password,
                    anna.calendar_url.replace(origin, through),
                )
                unlimited = BotApiEmulator(global_per_second=None, chat_per_second=None)
                async with (
                    unlimited as emulator,
                    local_bot(Path(tmp), emulator, p, clock=lambda: START, accounts=accounts, sweep_seconds=None),
                ):
                    staff = emulator.user(JONAS, "Jonas")
                    await staff.send("/start")
                    crowd = [emulator.user(100_000 + i, "Client") for i in range(clients)]
                    for first in range(0, clients, 10):
                        await asyncio.gather(*(walk(c, "Anna Kowalska", "09:00") for c in crowd[first : first + 10]))
                    side = [emulator.user(200_000 + i, "Other") for i in range(others)]
                    for first in range(0, others, 10):
                        await asyncio.gather(*(walk(c, "Jonas Petraitis", None) for c in side[first : first + 10]))

                    proxy.delay = delay
                    requests_before = proxy.answered
                    profiler = cProfile.Profile() if profile else None
                    if profiler is not None:
                        profiler.enable()
                    started = time.perf_counter()
                    crowd_times: list[float] = []

                    async def send(c: TelegramUser) -> None:
                        crowd_times.append(
                            await timed(
                                c,
                                lambda: c.tap("Send request", wait=False),
                                lambda: "Your request has been sent" in c.last.text or "just taken" in c.last.text,
                            )
                        )

                    crowd_task = asyncio.gather(*(send(c) for c in crowd))
                    await asyncio.sleep(0.2)  # the hundred are in: the slow server now has their reads
                    other_times: list[float] = []
                    agenda_times: list[float] = []
                    pending_at_answers: list[int] = []

                    async def other(c: TelegramUser) -> None:
                        before = _screen(c)
                        t = await timed(c, lambda: c.tap("1", wait=False), lambda: _screen(c) != before)
                        other_times.append(t)
                        pending_at_answers.append(proxy.pending)

                    async def agenda() -> None:
                        for _ in range(5):
                            before = len(staff.messages)
                            t = await timed(
                                staff,
                                lambda: staff.send("/agenda", wait=False),
                                lambda before=before: len(staff.messages) > before,
                            )
                            other_times.append(t)
                            agenda_times.append(t)
                            pending_at_answers.append(proxy.pending)

                    await asyncio.gather(*(other(c) for c in side), agenda())
                    await crowd_task
                    elapsed = time.perf_counter() - started
                    if profiler is not None and profile:
                        profiler.disable()
                        profiler.dump_stats(profile)
                    sent = sum("Your request has been sent" in c.last.text for c in crowd)
                    print(
                        f"bench_slow_calendar: {clients} clients of a server answering after {delay:g} s, "
                        f"{others} other clients and 5 /agenda meanwhile"
                    )
                    print(_line("others' answers (Jonas's day picker, /agenda)", other_times))
                    print(_line("  of which /agenda", agenda_times))
                    print(
                        f"  answered while the slow server still had requests pending: "
                        f"{sum(n > 0 for n in pending_at_answers)} of {len(pending_at_answers)}"
                    )
                    print(_line("the slow server's own clients (Send request)", crowd_times))
                    print(
                        f"  {sent} request sent, {clients - sent} told the time was taken; "
                        f"{proxy.answered - requests_before} requests reached the slow server; "
                        f"all answered within {elapsed:.1f} s"
                    )
                    proxy.delay = 0
        finally:
            await embedded.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--others", type=int, default=20)
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--profile", metavar="FILE", help="write cProfile statistics of the measured phase")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.clients, args.others, args.delay, args.profile))


if __name__ == "__main__":
    sys.exit(main())
