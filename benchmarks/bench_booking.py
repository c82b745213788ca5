"""Many clients booking at once: the real bot on the Bot API emulator, the embedded Radicale, SQLite.

Every client walks the whole dialog (/start ... "Send request") as a Telegram user would, choosing
among what it is shown with a bias to the first days and times, so that many race for the same slots.
The run goes in rounds so that CalDAV requests can be told apart: all clients still without a booking
browse up to their summary, then all of them press "Send request" at the same moment; the losers
("this time was just taken") pick another time in the next round.

Run: .venv/bin/python -m benchmarks.bench_booking [--clients 200] [--realistic-limits] [--approve]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import statistics
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from icalendar import Calendar

from bot.local import local_bot
from caldav_bridge.embedded import EmbeddedAccount
from scheduling.config import Practice, parse_practice
from scheduling.store import Store
from tgemu import BotApiEmulator, ChatMessage, TelegramUser

EXAMPLE = Path(__file__).resolve().parents[1] / "practice.example.toml"
# Monday 30 November 2026, 08:00 in Warsaw: a fixed clock keeps the offered days and times predictable.
START = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SPECIALISTS = {"anna": 9001, "jonas": 9002}
FIRST_CLIENT = 100_000
STEP_TIMEOUT = 30.0
MAX_ROUNDS = 40
MAX_STEPS = 40  # per client and round: a dialog that needs more is stuck
DAY_WEIGHTS = (4, 2, 1)  # how much more often the first shown days and times are picked
TIME_WEIGHTS = (8, 4, 2, 1)

SENT = "Your request has been sent"
TAKEN = "this time was just taken"
REFUSED = "can no longer be booked"
BROKE = "Something went wrong"


# The crowd races for a handful of times far harder than people do: a client told "just taken" three times
# in a minute would next be told to slow down ([limits], tested in tests/test_limits.py). The benchmark
# measures the bot under that crowd, not the client's limits, so it allows the most Send taps a minute.
CROWD_LIMITS = {"sends_per_minute": 60}


def practice_with_staff() -> Practice:
    """The example practice with the specialists' Telegram ids filled in, as they would be in production."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for spec in data["specialists"]:
        spec["telegram_id"] = SPECIALISTS[spec["id"]]
    data.setdefault("limits", {}).update(CROWD_LIMITS)
    return parse_practice(data)


@dataclass(frozen=True)
class Plan:
    """What a client is after: where, which service, and whom (a specialist id or "*" for first available)."""

    location: str
    service: str
    specialist: str


def plans(practice: Practice) -> list[Plan]:
    """Every location/service/specialist choice the dialog offers, spread evenly over the clients."""
    out = []
    for loc in practice.locations:
        for service in practice.services:
            ids = [s.id for s in practice.specialists_for(service.id, loc.id)]
            out += [Plan(loc.id, service.id, i) for i in ids]
            if len(ids) > 1:
                out.append(Plan(loc.id, service.id, "*"))
    return out


# --- watching the chats ----------------------------------------------------------------------------


@dataclass
class Watch:
    """Changes the bot made in one chat, fed by the emulator's message listener."""

    version: int = 0
    first_change: float | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        self.version += 1
        if self.first_change is None:
            self.first_change = time.perf_counter()
        self.event.set()

    def answered(self) -> None:
        """A tap was answered: no new screen, but a step waiting for the answer checks again."""
        self.event.set()


@dataclass
class Step:
    """One update a person pushed and how long the bot took to answer it."""

    kind: str  # "start", "tap", "text", "contact", "send", "approve"
    phase: str  # "browse", "commit", "approve"
    first: float  # seconds to the first visible change (and the tap answered)
    settled: float  # seconds until the screen the person acts on next was complete


def _dialog(user: TelegramUser) -> ChatMessage | None:
    return next((m for m in reversed(user.messages) if m.inline_keyboard), None)


def _data(message: ChatMessage | None) -> list[str]:
    return [d for row in (message.button_data if message else []) for d in row if d]


class StepFailed(Exception):
    """A step did not reach a usable screen in time, or the bot reported a failure."""


class NoTimeLeft(Exception):
    """The day picker shows no free day in any month the client may still move to: the practice is full."""


@dataclass
class Person:
    """A scripted Telegram user plus what the benchmark needs to time it."""

    user: TelegramUser
    watch: Watch
    steps: list[Step]

    async def act(
        self, kind: str, phase: str, push: Callable[[], Awaitable[object]], ready: Callable[[], bool], tap: bool
    ) -> None:
        """Push one update and wait until the chat changed, the tap was answered and `ready()` holds."""
        user, watch = self.user, self.watch
        version, answers = watch.version, len(user.answers)
        watch.first_change = None
        started = time.perf_counter()
        await push()

        def settled() -> bool:
            answered = len(user.answers) > answers
            if tap and answered and user.answers[-1].show_alert:
                return True  # an alert is the whole answer: nothing else changes
            messages = user.messages
            broke = bool(messages) and BROKE in messages[-1].text
            return (not tap or answered) and watch.version > version and (broke or ready())

        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while not settled():
                    watch.event.clear()
                    await watch.event.wait()
        except TimeoutError:
            last = user.messages[-1].text[:80] if user.messages else None
            raise StepFailed(f"{kind}: no usable answer within {STEP_TIMEOUT:.0f} s (last: {last!r})") from None
        done = time.perf_counter()
        first = watch.first_change if watch.first_change is not None else done
        self.steps.append(Step(kind, phase, first - started, done - started))
        if tap and len(user.answers) > answers and user.answers[-1].show_alert:
            raise StepFailed(f"{kind}: refused with {user.answers[-1].text!r}")
        if BROKE in user.messages[-1].text:
            raise StepFailed(f"{kind}: the bot reported a failure")

    async def tap(self, data: str, message: ChatMessage, phase: str, kind: str = "tap") -> None:
        def ready() -> bool:
            last = self.user.messages[-1]
            return bool(last.inline_keyboard) or SENT in last.text

        await self.act(kind, phase, lambda: self.user.tap_data(data, message.message_id, wait=False), ready, tap=True)

    async def say(self, kind: str, phase: str, push: Callable[[], Awaitable[object]]) -> None:
        """Send a message or contact; done when a new dialog message with buttons has arrived."""
        before = self.user.messages[-1].message_id if self.user.messages else 0

        def ready() -> bool:
            last = self.user.messages[-1]
            return last.message_id > before and bool(last.inline_keyboard)

        await self.act(kind, phase, push, ready, tap=False)


# --- a client ----------------------------------------------------------------------------------------


@dataclass
class Client:
    person: Person
    plan: Plan
    practice: Practice
    rng: random.Random
    number: int
    think: float = 0.0  # mean pause before each step, in seconds
    state: str = "browsing"  # browsing -> summary -> booked | full | failed | stuck
    reason: str = ""
    taken: int = 0
    refused: int = 0
    month: str = START.strftime("%Y-%m")  # the latest month this client moved on to
    updates: Counter[str] = field(default_factory=Counter)

    @property
    def user(self) -> TelegramUser:
        return self.person.user

    def _weighted(self, options: list[str], weights: tuple[int, ...]) -> str:
        head = options[: len(weights)]
        return self.rng.choices(head, weights=weights[: len(head)])[0]

    def _pick(self, values: list[str]) -> str:
        """The plan's answer on a pick screen: location, category, service, specialist or channel."""
        p, plan = self.practice, self.plan
        if set(values) <= set(p.location_by_id):
            wanted = plan.location
        elif all(v.isdigit() for v in values):
            wanted = str(p.categories().index(p.service_by_id[plan.service].category))
        elif set(values) <= set(p.service_by_id):
            wanted = plan.service
        elif "*" in values or set(values) <= set(p.specialist_by_id):
            wanted = plan.specialist
        else:
            return values[0]  # the channel: the first offered
        return wanted if wanted in values else values[0]

    async def browse(self) -> None:
        """Walk the dialog up to the summary (or until it cannot go on)."""
        try:
            for _ in range(MAX_STEPS):
                if await self._step():
                    return
            self.state, self.reason = "stuck", f"no summary after {MAX_STEPS} steps"
        except StepFailed as exc:
            self.state, self.reason = "failed", str(exc)
        except NoTimeLeft:
            self.state = "full"

    async def _step(self) -> bool:
        """Take the next step of the dialog; True once the summary is on screen."""
        user, person = self.user, self.person
        if self.think:
            await asyncio.sleep(self.rng.expovariate(1 / self.think))
        if not user.messages:
            self.updates["browse"] += 1
            await person.say("start", "browse", lambda: user.send("/start", wait=False))
            return False
        dialog = _dialog(user)
        if dialog is None:
            raise StepFailed(f"no dialog on screen (last: {user.messages[-1].text[:80]!r})")
        data, text = _data(dialog), dialog.text
        if "b|send" in data:
            self.state = "summary"
            return True
        self.updates["browse"] += 1
        if "first and last name" in text:
            await person.say("text", "browse", lambda: user.send(f"Bench Client {self.number}", wait=False))
        elif text.startswith("Or go back"):
            phone = f"48601{self.number % 1_000_000:06d}"
            await person.say("contact", "browse", lambda: user.share_contact(phone, wait=False))
        elif (action := self._choose(data)) is not None:
            await person.tap(action, dialog, "browse")
        else:
            raise StepFailed(f"no way forward on screen {text[:60]!r} with buttons {data[:6]}...")
        return False

    def _choose(self, data: list[str]) -> str | None:
        """The callback data to tap on a button screen."""
        for simple in ("b|agree", "b|skip", "b|retry"):
            if simple in data:
                return simple
        for prefix, weights in (("b|time|", TIME_WEIGHTS), ("b|day|", DAY_WEIGHTS)):
            shown = [d for d in data if d.startswith(prefix)]
            if shown:
                return self._weighted(shown, weights)
        picks = [d.removeprefix("b|pick|") for d in data if d.startswith("b|pick|")]
        if picks:
            return "b|pick|" + self._pick(picks)
        if any(d.startswith("b|noop") for d in data):
            # A month without free days: on to the next month, never back to one already seen.
            later = max((d for d in data if d.startswith("b|month|")), default="")
            if later.removeprefix("b|month|") > self.month:
                self.month = later.removeprefix("b|month|")
                return later
            raise NoTimeLeft
        if "b|back" in data:
            return "b|back"  # a time screen with no times left: back to the days
        return None

    async def send(self) -> str:
        """Press "Send request" on the summary; returns how it went: sent, taken, refused or failed."""
        dialog = _dialog(self.user)
        assert dialog is not None
        if self.think:
            await asyncio.sleep(self.rng.expovariate(1 / self.think))
        self.updates["commit"] += 1
        try:
            await self.person.tap("b|send", dialog, "commit", kind="send")
        except StepFailed as exc:
            self.state, self.reason = "failed", str(exc)
            return "failed"
        text = self.user.messages[-1].text
        if SENT in text:
            self.state = "booked"
            return "sent"
        self.state = "browsing"
        if TAKEN in text:
            self.taken += 1
            return "taken"
        if REFUSED in text:
            self.refused += 1
            return "refused"
        self.state, self.reason = "failed", f"unexpected answer to Send: {text[:80]!r}"
        return "failed"


# --- checks after the run ----------------------------------------------------------------------------


@dataclass
class Overlaps:
    database: int = 0
    calendar: int = 0
    active: int = 0
    events: int = 0
    calendar_only: int = 0  # events no active appointment explains
    missing: int = 0  # active appointments without their event

    @property
    def found(self) -> int:
        return self.database + self.calendar


def _pairs(intervals: list[tuple[datetime, datetime]]) -> int:
    """Overlapping pairs among half-open intervals."""
    ordered = sorted(intervals)
    return sum(
        1
        for i, (_, end) in enumerate(ordered)
        for start, _ in ordered[i + 1 :]
        if start < end  # sorted by start, so this one begins inside the earlier one
    )


def _as_utc(value: object) -> datetime:
    assert isinstance(value, datetime), f"an all-day booking event: {value!r}"
    return value.astimezone(UTC)


async def double_bookings(store: Store, practice: Practice, accounts: dict[str, EmbeddedAccount]) -> Overlaps:
    """Overlaps (buffers included) among active appointments in the database and among calendar events."""
    found = Overlaps()
    buffers = {s.id: timedelta(minutes=s.buffer_after) for s in practice.services}
    async with httpx.AsyncClient(timeout=30) as http:
        for spec in practice.specialists:
            async with store.tx() as tx:
                active = await tx.active_appointments(spec.id, START - timedelta(days=1), START + timedelta(days=400))
            buffer = {a.uid: buffers[a.service_id] for a in active}
            busy = {a.uid: (a.start, a.end + buffer[a.uid]) for a in active}
            found.active += len(active)
            found.database += _pairs(list(busy.values()))
            # Read back independently of the bot's CalDAV code: one GET of the whole collection.
            account = accounts[spec.id]
            response = await http.get(account.calendar_url, auth=(account.username, account.password))
            response.raise_for_status()
            events = {}
            for event in Calendar.from_ical(response.text).walk("VEVENT"):
                if str(event.get("STATUS", "")) == "CANCELLED":
                    continue
                uid = str(event["UID"])
                start, end = _as_utc(event["DTSTART"].dt), _as_utc(event["DTEND"].dt)
                # Buffers come from the appointment the event belongs to, when there is one.
                events[uid] = (start, end + buffer.get(uid, timedelta(0)))
            found.events += len(events)
            found.calendar += _pairs(list(events.values()))
            found.calendar_only += len(events.keys() - busy.keys())
            found.missing += len(busy.keys() - events.keys())
    return found


# --- the run -----------------------------------------------------------------------------------------


class LogCount(logging.Handler):
    """Counts the bot's warnings and errors (their templates only: no personal data) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter[tuple[str, str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        detail = f"{type(exc).__name__}: {str(exc)[:120]}" if exc else ""
        self.seen[(record.levelname, f"{record.name}: {record.msg}"[:140], detail)] += 1


@contextlib.contextmanager
def counting_logs() -> Iterator[LogCount]:
    handler, root = LogCount(), logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass
class Report:
    clients: int
    realistic: bool
    steps: list[Step] = field(default_factory=list)
    hammer_steps: list[Step] = field(default_factory=list)  # of the clients who tap without pause (--hammers)
    outcomes: Counter[str] = field(default_factory=Counter)  # per Send press: sent, taken, refused, failed
    final: Counter[str] = field(default_factory=Counter)  # per client: booked, full, failed, stuck, unfinished
    failures: Counter[str] = field(default_factory=Counter)
    updates: Counter[str] = field(default_factory=Counter)
    caldav: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    database: str = "SQLite"
    think: float = 0.0
    booking_seconds: float = 0.0
    booking_cpu: float = 0.0
    approve_seconds: float = 0.0
    approvals: int = 0
    unanswered: int = 0
    refused_taps: int = 0  # taps answered with an alert ("out of date", "not valid")
    api_calls: Counter[str] = field(default_factory=Counter)
    api_errors: Counter[str] = field(default_factory=Counter)
    logs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    overlaps: Overlaps | None = None
    timed_out: bool = False

    @property
    def booked(self) -> int:
        return self.final["booked"]

    @property
    def ok(self) -> bool:
        o = self.overlaps
        return (
            not self.timed_out
            and o is not None
            and o.found == 0
            and self.booked > 0
            and self.final["failed"] + self.final["stuck"] + self.final["unfinished"] == 0
            and self.unanswered == 0
            and self.refused_taps == 0
        )

    def limits(self) -> str:
        """Which flood limits were on, for the summary line."""
        return (
            "Telegram-like flood limits in the emulator, the bot's rate limiter on"
            if self.realistic
            else "emulator flood limits off and the bot's rate limiter off (neither is the bottleneck)"
        )

    def lines(self) -> list[str]:
        limits = self.limits()
        booking_updates = self.updates["browse"] + self.updates["commit"]
        out = [
            f"{self.clients} clients, {self.rounds} rounds, {self.database}, "
            + (f"mean think time {self.think:g} s; " if self.think else "no think time; ")
            + limits,
            f"booking phase: {booking_updates} updates in {self.booking_seconds:.1f} s = "
            f"{booking_updates / max(self.booking_seconds, 1e-9):.1f} updates/s "
            f"(CPU of this process, bot + emulator + clients: {self.booking_cpu:.1f} s)",
        ]
        for label, phases in (("all steps", ("browse", "commit")), ("browsing", ("browse",)), ("Send", ("commit",))):
            out.append(_latency(label, [s for s in self.steps if s.phase in phases]))
        if self.hammer_steps:
            label = "the clients tapping without pause (apart from the steps above)"
            out.append(_latency(label, [s for s in self.hammer_steps if s.phase in ("browse", "commit")]))
        sends = sum(self.outcomes.values())
        out.append(
            f"Send presses: {sends}: sent {self.outcomes['sent']}, just taken {self.outcomes['taken']}, "
            f"refused {self.outcomes['refused']}, failed {self.outcomes['failed']}"
        )
        out.append(
            "clients: "
            + ", ".join(
                f"{label} {self.final[k]}"
                for k, label in (
                    ("booked", "booked"),
                    ("full", "no free time left"),
                    ("failed", "failed"),
                    ("stuck", "stuck"),
                    ("unfinished", "unfinished"),
                )
            )
            + f"; taps never answered: {self.unanswered}; taps refused: {self.refused_taps}"
        )
        for reason, count in self.failures.most_common(5):
            out.append(f"  failure x{count}: {reason}")
        browse, commit = self.caldav["browse"], self.caldav["commit"]
        booked = max(self.booked, 1)
        out += [
            f"CalDAV requests per booking: {(browse + commit) / booked:.2f} "
            f"(browsing {browse / booked:.2f}, committing {commit / booked:.2f}; "
            f"{browse + commit} requests for {self.booked} bookings)",
            f"CalDAV requests per browsing tap: {browse / max(self.updates['browse'], 1):.4f} "
            f"({browse} requests for {self.updates['browse']} browsing updates)",
            f"CalDAV requests per Send press: {commit / max(sends, 1):.2f} (the check against the calendar "
            "and the event written by the outbox)",
        ]
        if self.approvals:
            out.append(_latency("approve", [s for s in self.steps if s.phase == "approve"]))
            out.append(
                f"approved {self.approvals} in {self.approve_seconds:.1f} s; CalDAV requests per approval: "
                f"{self.caldav['approve'] / self.approvals:.2f}"
            )
            whole = browse + commit + self.caldav["approve"]
            out.append(
                f"CalDAV requests per booking from request to approval: {whole / booked:.2f} "
                f"(browsing, every Send press including the 'just taken' ones, and the approval)"
            )
        calls = sum(v for k, v in self.api_calls.items() if k != "getUpdates")
        out.append(
            f"Bot API calls: {calls} ({calls / max(booking_updates, 1):.2f} per update); errors: "
            + (", ".join(f"{k} {v}" for k, v in self.api_errors.most_common()) or "none")
        )
        o = self.overlaps
        if o is None:
            out.append("double bookings: not checked")
        else:
            out += [
                f"double bookings in the database: {o.database} overlapping pairs among {o.active} active "
                "appointments (buffers included)",
                f"double bookings in the calendars (read back from Radicale): {o.calendar} overlapping pairs "
                f"among {o.events} events; events without an active appointment: {o.calendar_only}; "
                f"active appointments without an event: {o.missing}",
            ]
        if self.logs:
            out.append("bot warnings and errors:")
            out += [
                f"  {level} x{n}: {what} {detail}".rstrip() for (level, what, detail), n in self.logs.most_common(8)
            ]
        else:
            out.append("bot warnings and errors: none")
        if self.timed_out:
            out.append("TIMED OUT: the figures above are partial")
        return out


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _latency(label: str, steps: list[Step]) -> str:
    if not steps:
        return f"{label}: no steps"
    first = [s.first * 1000 for s in steps]
    settled = [s.settled * 1000 for s in steps]
    return (
        f"{label} ({len(steps)}): update -> answer p50 {_percentile(first, 50):.0f} ms, "
        f"p95 {_percentile(first, 95):.0f} ms, max {max(first):.0f} ms; "
        f"-> screen complete p50 {_percentile(settled, 50):.0f} ms, p95 {_percentile(settled, 95):.0f} ms"
    )


async def outbox_drained(store: Store) -> None:
    """Wait until every calendar write the bookings queued has been done."""
    while True:
        async with store.tx() as tx:
            if not await tx.outbox_pending():
                return
        await asyncio.sleep(0.05)


async def approve_all(staff: dict[str, Person], report: Report) -> None:
    """Each specialist approves every request in their chat, one after another; the two work in parallel."""

    async def approve(person: Person) -> None:
        for message in list(person.user.messages):
            data = next((d for d in _data(message) if d.startswith("s|a|")), None)
            if data is None:
                continue

            def ready(message: ChatMessage = message) -> bool:
                return not any(d.startswith("s|a|") for d in _data(message))

            async def push(data: str = data, message: ChatMessage = message) -> None:
                await person.user.tap_data(data, message.message_id, wait=False)

            await person.act("approve", "approve", push, ready, tap=True)
            report.approvals += 1

    await asyncio.gather(*(approve(p) for p in staff.values()))


async def run(
    clients: int = 200,
    *,
    realistic_limits: bool = False,
    approve: bool = False,
    seed: int = 1,
    think: float = 0.0,
    database_url: str | None = None,
    timeout: float = 300.0,  # noqa: ASYNC109 (the benchmark's own bound, reported rather than raised)
) -> Report:
    """Run the benchmark and return its figures; never raises on a timeout, the report says so."""
    practice = practice_with_staff()
    report = Report(clients, realistic_limits, think=think)
    if database_url:
        report.database = database_url.split(":", 1)[0].split("+", 1)[0]
    limits = {} if realistic_limits else {"global_per_second": None, "chat_per_second": None}
    with tempfile.TemporaryDirectory() as tmp, counting_logs() as logs:
        async with (
            BotApiEmulator(**limits) as emulator,
            local_bot(  # type: ignore[arg-type]
                Path(tmp),
                emulator,
                practice,
                clock=lambda: START,
                database_url=database_url,
                rate_limit=realistic_limits,
                sweep_seconds=None,  # a fixed clock: nothing expires; keeps the CalDAV counts to the bookings
            ) as (runtime, _app),
        ):
            staff, crowd = make_crowd(emulator, practice, report, clients, seed, think)
            try:
                async with asyncio.timeout(timeout):
                    for p in staff.values():
                        await p.act(
                            "start", "staff", lambda p=p: p.user.send("/start", wait=False), lambda: True, tap=False
                        )
                    await booking_rounds(runtime.store, lambda: runtime.gateway.requests, crowd, report)
                    if approve:
                        before, started = runtime.gateway.requests, time.perf_counter()
                        await approve_all(staff, report)
                        await outbox_drained(runtime.store)
                        report.approve_seconds = time.perf_counter() - started
                        report.caldav["approve"] = runtime.gateway.requests - before
            except TimeoutError:
                report.timed_out = True
            except StepFailed as exc:
                report.failures[f"staff: {exc}"] += 1
            tally(report, crowd, emulator)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await outbox_drained(runtime.store)
            report.overlaps = await double_bookings(runtime.store, practice, runtime.accounts)
        report.logs = Counter(logs.seen)
    return report


def make_crowd(
    emulator: BotApiEmulator,
    practice: Practice,
    report: Report,
    clients: int,
    seed: int,
    think: float,
    hammers: int = 0,
) -> tuple[dict[str, Person], list[Client]]:
    """The specialists and the clients, each watched through the emulator's message listener.

    The first `hammers` clients tap without pause whatever `think` is, and their steps are timed apart.
    """
    watches: dict[int, Watch] = {}

    def listener(event: str, message: ChatMessage) -> None:
        if message.from_bot and message.chat_id in watches:
            watch = watches[message.chat_id]
            watch.answered() if event == "answered" else watch.changed()

    emulator.listeners.append(listener)

    def person(user_id: int, name: str, steps: list[Step] | None = None) -> Person:
        watches[user_id] = Watch()
        return Person(emulator.user(user_id, name), watches[user_id], report.steps if steps is None else steps)

    staff = {spec: person(tid, spec.title()) for spec, tid in SPECIALISTS.items()}
    options = plans(practice)
    crowd = [
        Client(
            person(FIRST_CLIENT + i, "Client", report.hammer_steps if i < hammers else None),
            options[i % len(options)],
            practice,
            random.Random(seed * 1_000_003 + i),
            i,
            0.0 if i < hammers else think,
        )
        for i in range(clients)
    ]
    return staff, crowd


def tally(report: Report, crowd: list[Client], emulator: BotApiEmulator) -> None:
    """What became of each client, and what the Bot API saw."""
    for c in crowd:
        report.final[c.state if c.state in ("booked", "full", "failed", "stuck") else "unfinished"] += 1
        if c.reason:
            report.failures[_generic(c.reason)] += 1
        report.updates.update(c.updates)
    report.unanswered = sum(len(c.user.unanswered) for c in crowd)
    report.refused_taps = sum(1 for c in crowd for answer in c.user.answers if answer.show_alert)
    report.api_calls, report.api_errors = Counter(emulator.requests), Counter(emulator.errors)


def _generic(reason: str) -> str:
    """A failure reason without the client-specific part, so equal failures group together."""
    return reason.split(" (last:")[0]


async def booking_rounds(store: Store, caldav_requests: Callable[[], int], crowd: list[Client], report: Report) -> None:
    """Rounds of browsing up to the summary, then everyone presses Send at once, until all are done."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        for _ in range(MAX_ROUNDS):
            waiting = [c for c in crowd if c.state == "browsing"]
            if not waiting:
                break
            report.rounds += 1
            before = caldav_requests()
            await asyncio.gather(*(c.browse() for c in waiting))
            report.caldav["browse"] += caldav_requests() - before
            before = caldav_requests()
            ready = [c for c in crowd if c.state == "summary"]
            report.outcomes.update(await asyncio.gather(*(c.send() for c in ready)))
            await outbox_drained(store)
            report.caldav["commit"] += caldav_requests() - before
    finally:
        report.booking_seconds = time.perf_counter() - started
        report.booking_cpu = time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="simulated clients (default 200)")
    parser.add_argument(
        "--realistic-limits",
        action="store_true",
        help="Telegram-like flood limits in the emulator and the bot's rate limiter on",
    )
    parser.add_argument("--approve", action="store_true", help="the specialists approve every request afterwards")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--think", type=float, default=0.0, help="mean pause before each step (default 0 s)")
    parser.add_argument(
        "--database-url", help="an empty database to use instead of a fresh SQLite file, e.g. postgresql://..."
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    report = asyncio.run(
        run(
            args.clients,
            realistic_limits=args.realistic_limits,
            approve=args.approve,
            seed=args.seed,
            think=args.think,
            database_url=args.database_url,
            timeout=args.timeout,
        )
    )
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
