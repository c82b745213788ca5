"""The bot measured from outside: each bot a process of its own, the Bot API emulator another, the clients a third.

The same scripted clients as bench_booking walk the whole dialog; the difference is where things run. The Bot
API stand-in is `python -m tgemu --port N --token T`, and the clients act and follow their chats through its
/_emu/ routes (`tgemu.remote`). The bot is `python -m bot.local` (the real `bookingbot run` with a chosen
start time), one process on SQLite with long polling, or several on one database behind the emulator's webhook
relay, which hands each update to the next process in turn, as a load balancer in front of replicas does (so
one chat's consecutive updates land on alternating processes). Calendars are the embedded Radicale, started
here and shared by every bot process through a counting proxy, so CalDAV requests are counted on the wire.

Run: .venv/bin/python -m benchmarks.bench_e2e [--clients 500] [--processes 2] [--postgres URL] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy.engine import make_url

from benchmarks.bench_booking import (
    CROWD_LIMITS,
    EXAMPLE,
    SPECIALISTS,
    START,
    Report,
    StepFailed,
    _percentile,
    approve_all,
    booking_rounds,
    counting_logs,
    double_bookings,
    make_crowd,
    outbox_drained,
    practice_with_staff,
    tally,
)
from bot.local import write_accounts
from caldav_bridge.embedded import EmbeddedAccount, EmbeddedCalDAV, free_port, wait_listening
from scheduling.config import Practice
from scheduling.db import create_schema, make_engine
from scheduling.store import Store
from tgemu.remote import RemoteEmulator

TOKEN = "424242:BENCH"
SECRET = "bench-webhook-secret-0123456789abcdef"  # 32 characters at least
PUBLIC_WEBHOOK = "https://bench.invalid/telegram"  # what the bot registers; the relay posts to the listen addresses
# Only a hang guard: start-up waits for what it waits for (health, the webhook set), and a process that
# exits is reported at once. On a loaded machine a bot process needs 30 s and more to come up.
START_TIMEOUT = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the calendar server, counted --------------------------------------------------------------------


class CountingProxy:
    """A loopback HTTP proxy in front of the calendar server that counts the requests the bots send."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def rewrite(self, url: str) -> str:
        return url.replace(self.upstream, f"http://127.0.0.1:{self.port}", 1)

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        self.requests += 1
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in skip | {"content-encoding"}}
            if "Content-Encoding" in upstream.headers:
                out["Content-Encoding"] = upstream.headers["Content-Encoding"]
            return web.Response(status=upstream.status, headers=out, body=body)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


# --- the Bot API emulator and the bot processes ------------------------------------------------------


@dataclass
class EmulatorProcess:
    """`python -m tgemu`: the Bot API stand-in as a process of its own, its users driven over /_emu/."""

    proc: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(cls, log: Path, realistic_limits: bool, latency: float = 0.0) -> EmulatorProcess:
        port = free_port()
        options = ["--latency", str(latency), *([] if realistic_limits else ["--no-flood-limits"])]
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "tgemu", "--port", str(port), "--token", TOKEN, *options),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            await wait_listening("127.0.0.1", port, proc)
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        return cls(proc, f"http://127.0.0.1:{port}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass
class BotProcess:
    """One `python -m bot.local` process and how much CPU and memory it used."""

    proc: asyncio.subprocess.Process
    listen: str
    log: Path

    @classmethod
    async def start(cls, env: dict[str, str], listen: str, log: Path, accounts: Path) -> BotProcess:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.local",
                "--start",
                START.isoformat(),
                "--accounts",
                str(accounts),
                env={**os.environ, **env, "BOOKINGBOT_LISTEN": listen},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        return cls(proc, listen, log)

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory(self) -> tuple[float, float]:
        """Resident set size now and at its peak, in MB."""
        values = dict(
            line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if ":" in line
        )
        return int(values["VmRSS"].split()[0]) / 1024, int(values["VmHWM"].split()[0]) / 1024

    async def healthy(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://{self.listen}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"bot process did not come up:\n{self.log.read_text(errors='replace')[-3000:]}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def fresh_postgres(base_url: str) -> AsyncIterator[str]:
    """A new empty PostgreSQL database next to the one `base_url` names, dropped afterwards."""
    admin = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bookingbot_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def practice_file(folder: Path) -> Path:
    """The example practice with the specialists' Telegram ids, as the bot processes read it."""
    text = EXAMPLE.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for spec in data["specialists"]:
        assert spec["telegram_id"] == 0, "the example's specialists have no Telegram id yet"
    for tid in SPECIALISTS.values():
        text = text.replace("telegram_id = 0", f"telegram_id = {tid}", 1)
    for name, value in CROWD_LIMITS.items():
        text, found = re.subn(rf"(?m)^{name} = \d+", f"{name} = {value}", text)
        assert found == 1, f"the example's [limits] has no single {name}"
    path = folder / "practice.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the run -----------------------------------------------------------------------------------------


@dataclass
class E2EReport(Report):
    processes: int = 1
    delivery: str = "long polling"
    bot_cpu: float = 0.0  # CPU seconds of all bot processes during the booking phase
    rss: list[tuple[float, float]] = field(default_factory=list)  # per process: now, peak (MB)
    load: str = ""
    delivered: list[int] = field(default_factory=list)  # updates each process accepted from the relay
    replies: int = 0  # taps answered in the webhook's response

    def limits(self) -> str:
        """The bot processes are `bookingbot run`, whose rate limiter is always on."""
        emulator = "Telegram-like flood limits in the emulator" if self.realistic else "emulator flood limits off"
        return f"{emulator}, the bot's rate limiter on (as in bookingbot run)"

    def lines(self) -> list[str]:
        booking_updates = self.updates["browse"] + self.updates["commit"]
        first = [s.first * 1000 for s in self.steps if s.phase in ("browse", "commit")]
        head = [
            f"== {self.processes} bot process(es), {self.database}, {self.delivery}; load before: {self.load}",
            f"updates/s: {booking_updates / max(self.booking_seconds, 1e-9):.1f} "
            f"({booking_updates} updates in {self.booking_seconds:.1f} s)",
        ]
        if first:
            p50, p95, p99 = (_percentile(first, q) for q in (50, 95, 99))
            head.append(f"update -> answer: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms")
        head.append(
            f"bot CPU per update: {self.bot_cpu * 1000 / max(booking_updates, 1):.2f} ms "
            f"({self.bot_cpu:.1f} s over {self.processes} process(es))"
        )
        if self.delivered:
            head.append(
                f"webhook: updates per process {self.delivered}; taps answered in the webhook response: {self.replies}"
            )
        head.append("bot RSS: " + ", ".join(f"{now:.0f} MB (peak {peak:.0f} MB)" for now, peak in self.rss))
        return head + super().lines()


async def run(
    clients: int = 200,
    *,
    processes: int = 1,
    database_url: str | None = None,
    webhook: bool | None = None,
    realistic_limits: bool = False,
    seed: int = 1,
    think: float = 0.0,
    timeout: float = 300.0,  # noqa: ASYNC109 (the benchmark's own bound, reported rather than raised)
    profile: Path | None = None,
    approve: bool = False,
    hammers: int = 0,
    latency: float = 0.0,
) -> E2EReport:
    """Start the calendar, the emulator and the bot processes, run the crowd, and report; never raises on timeout."""
    webhook = processes > 1 if webhook is None else webhook
    if processes > 1 and not webhook:
        raise ValueError("several bot processes share one bot token only behind a webhook")
    practice = practice_with_staff()
    report = E2EReport(clients, realistic_limits, think=think, processes=processes)
    report.delivery = "webhook, round-robin over the processes" if webhook else "long polling"
    if latency:
        report.delivery += f", Bot API answers {latency:g} ms late"
    report.load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp_name, counting_logs() as logs:
        tmp = Path(tmp_name)
        url = database_url or f"sqlite:///{tmp / 'bookingbot.db'}"
        report.database = url.split(":", 1)[0].split("+", 1)[0]
        calendars = EmbeddedCalDAV(tmp / "calendars", port=free_port())
        accounts = await calendars.start(practice)
        proxy = CountingProxy(calendars.url)
        await proxy.start()
        proxied = {
            spec: EmbeddedAccount(proxy.rewrite(a.url), a.username, a.password, proxy.rewrite(a.calendar_url))
            for spec, a in accounts.items()
        }
        write_accounts(tmp / "accounts.json", proxied)
        engine = make_engine(url)
        # The schema exists before the bots start, as on every start but a database's first: a first start
        # migrates, and keeps Alembic loaded (10 MB) until the next.
        await create_schema(engine)
        store = Store(engine)
        bots: list[BotProcess] = []
        telegram: EmulatorProcess | None = None
        try:
            telegram = await EmulatorProcess.start(tmp / "tgemu.log", realistic_limits, latency)
            async with RemoteEmulator(telegram.url) as emulator, aiohttp.ClientSession() as http:
                env = {
                    "BOOKINGBOT_TELEGRAM_TOKEN": TOKEN,
                    "BOOKINGBOT_TELEGRAM_API_URL": emulator.base_url.removesuffix("/bot"),
                    "BOOKINGBOT_CONFIG": str(practice_file(tmp)),
                    "BOOKINGBOT_DATABASE_URL": url,
                }
                if webhook:
                    env |= {"BOOKINGBOT_WEBHOOK_URL": PUBLIC_WEBHOOK, "BOOKINGBOT_WEBHOOK_SECRET": SECRET}
                for i in range(processes):
                    data = tmp / f"bot{i}"
                    bot_env = env | {"BOOKINGBOT_DATA_DIR": str(data)}
                    bots.append(
                        await BotProcess.start(
                            bot_env, f"127.0.0.1:{free_port()}", tmp / f"bot{i}.log", tmp / "accounts.json"
                        )
                    )
                # All at once, as replicas start: creating the schema is serialised in the database.
                await asyncio.gather(*(bot.healthy(http) for bot in bots))
                await _ready(emulator, bots, webhook)
                async with sampling(bots, profile):
                    await _crowd(
                        emulator, store, proxy, practice, bots, report, clients, seed, think, timeout, approve, hammers
                    )
                report.overlaps = await double_bookings(store, practice, accounts)
        finally:
            for bot in bots:
                await bot.stop()
            if telegram is not None:
                await telegram.stop()
            await engine.dispose()
            await proxy.close()
            await calendars.stop()
        report.logs = Counter(logs.seen)
        for bot in bots:
            for line in bot.log.read_text(errors="replace").splitlines():
                if " ERROR " in line or " WARNING " in line:
                    report.logs[("bot", line.split(" ", 3)[-1][:140], "")] += 1
    return report


async def _ready(emulator: RemoteEmulator, bots: list[BotProcess], webhook: bool) -> None:
    """Wait until every process listens for updates: webhook set by all, or the poller running."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        await emulator.refresh()
        if webhook and emulator.requests["setWebhook"] >= len(bots):
            await emulator.route(*(f"http://{bot.listen}/telegram" for bot in bots))
            return
        if not webhook and emulator.requests["getUpdates"] > 0:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the bot processes never started listening for updates")


async def _crowd(
    emulator: RemoteEmulator,
    store: Store,
    proxy: CountingProxy,
    practice: Practice,
    bots: list[BotProcess],
    report: E2EReport,
    clients: int,
    seed: int,
    think: float,
    limit: float,
    approve: bool = False,
    hammers: int = 0,
) -> None:
    staff, crowd = make_crowd(emulator, practice, report, clients, seed, think, hammers)
    cpu = sum(bot.cpu() for bot in bots)
    try:
        async with asyncio.timeout(limit):
            for p in staff.values():
                await p.act("start", "staff", lambda p=p: p.user.send("/start", wait=False), lambda: True, tap=False)
            cpu = sum(bot.cpu() for bot in bots)
            await booking_rounds(store, lambda: proxy.requests, crowd, report)
            if approve:
                before, started = proxy.requests, time.perf_counter()
                await approve_all(staff, report)
                await outbox_drained(store)
                report.approve_seconds = time.perf_counter() - started
                report.caldav["approve"] = proxy.requests - before
    except TimeoutError:
        report.timed_out = True
    except StepFailed as exc:
        report.failures[f"staff: {exc}"] += 1
    report.bot_cpu = sum(bot.cpu() for bot in bots) - cpu
    report.rss = [bot.memory() for bot in bots]
    await emulator.refresh()
    tally(report, crowd, emulator)  # type: ignore[arg-type]
    if emulator.relay.targets:
        report.delivered = [emulator.relay.delivered[f"http://{bot.listen}/telegram"] for bot in bots]
    report.replies = emulator.relay.replies["answerCallbackQuery"]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            await outbox_drained(store)


def _py_spy() -> str:
    """py-spy beside this Python (pip install py-spy), else the one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy") or str(beside)


@contextlib.asynccontextmanager
async def sampling(bots: list[BotProcess], folder: Path | None) -> AsyncIterator[None]:
    """py-spy samples each bot process while the block runs (nothing if folder is None)."""
    if folder is None:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    spies = [
        await asyncio.create_subprocess_exec(
            _py_spy(),
            "record",
            "--pid",
            str(bot.proc.pid),
            "--gil",  # on-CPU Python only: not threads waiting in a lock or on the network
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            str(folder / f"bot{i}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for i, bot in enumerate(bots)
    ]
    await asyncio.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            await spy.wait()


def profile_top(raw: Path, count: int = 25) -> list[str]:
    """The functions where the samples were, inclusive and self, from py-spy's raw (collapsed) output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [f.replace(str(Path(sys.prefix)), "") for f in stack.split(";")]
        total += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            inclusive[frame] += int(n)
    out = [f"{total} samples; inclusive:"]
    out += [f"  {100 * n / total:5.1f} % {frame[:150]}" for frame, n in inclusive.most_common(count)]
    out.append("self:")
    out += [f"  {100 * n / total:5.1f} % {frame[:150]}" for frame, n in own.most_common(count)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="simulated clients (default 200)")
    parser.add_argument("--processes", type=int, default=1, help="bot processes (more than 1: webhook)")
    parser.add_argument("--webhook", action="store_true", help="webhook delivery even for one process")
    parser.add_argument(
        "--postgres", help="a PostgreSQL URL: each run gets a fresh database beside it (default: SQLite file)"
    )
    parser.add_argument(
        "--compare", action="store_true", help="one process, then two (webhook, round-robin) in the same run"
    )
    parser.add_argument("--realistic-limits", action="store_true", help="Telegram-like flood limits in the emulator")
    parser.add_argument("--approve", action="store_true", help="the specialists approve every request afterwards")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--think", type=float, default=0.0, help="mean pause before each step (default 0 s)")
    parser.add_argument(
        "--hammers",
        type=int,
        default=0,
        help="of the clients, this many tap without pause (with --realistic-limits: into Telegram's per-chat "
        "limit); their latencies are reported apart",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="milliseconds the emulator holds each answer back (Telegram's RTT)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--profile", type=Path, help="sample the bot processes with py-spy into this folder")
    args = parser.parse_args(argv)
    runs = [(1, True), (2, True)] if args.compare else [(args.processes, args.webhook or args.processes > 1)]

    async def one(processes: int, webhook: bool) -> E2EReport:
        options = dict(
            processes=processes,
            webhook=webhook,
            realistic_limits=args.realistic_limits,
            seed=args.seed,
            think=args.think,
            timeout=args.timeout,
            profile=args.profile,
            approve=args.approve,
            hammers=args.hammers,
            latency=args.latency,
        )
        if args.postgres:
            async with fresh_postgres(args.postgres) as url:
                return await run(args.clients, database_url=url, **options)  # type: ignore[arg-type]
        return await run(args.clients, **options)  # type: ignore[arg-type]

    ok = True
    for processes, webhook in runs:
        report = asyncio.run(one(processes, webhook))
        print("\n".join(report.lines()), flush=True)
        for raw in sorted(args.profile.glob("bot*.txt")) if args.profile else []:
            print(f"profile of {raw.stem}:", *profile_top(raw), sep="\n", flush=True)
        ok = ok and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
