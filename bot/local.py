"""Run the real bot against the local Bot API emulator: for the demo, the benchmarks and the tests.

`python -m bot.local --start 2026-11-30T07:00:00Z --accounts calendars.json` runs one bot process like
`bookingbot run` (settings from the same BOOKINGBOT_* variables, long polling or webhook), with a clock
that starts at `--start` and runs on, and calendars another process serves: replicas of one practice on
one machine, for end-to-end tests and benchmarks that need the bot as a process of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telegram.ext import Application

from bot.app import SWEEP_SECONDS, build_application, set_commands
from bot.runtime import Runtime, start_runtime
from bot.settings import Settings, load_settings
from caldav_bridge.embedded import EmbeddedAccount
from scheduling.booking import Clock, utcnow
from scheduling.config import Practice, load_practice

if TYPE_CHECKING:  # the emulator runs in the tests' process, not in a bot process started from here
    from tgemu import BotApiEmulator


@contextlib.asynccontextmanager
async def polling(app: Application, emulator: BotApiEmulator, poll_timeout: int = 1) -> AsyncIterator[Application]:
    """Initialise, start and long-poll an Application on the emulator; shut it down cleanly afterwards."""
    await app.initialize()
    await app.start()
    emulator.track(app)
    try:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=poll_timeout)
        yield app
    finally:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        emulator.untrack(app)
        await app.shutdown()


@contextlib.asynccontextmanager
async def local_bot(
    data_dir: Path,
    emulator: BotApiEmulator,
    practice: Practice,
    *,
    clock: Clock = utcnow,
    database_url: str | None = None,
    accounts: dict[str, EmbeddedAccount] | None = None,
    rate_limit: bool = False,
    sweep_seconds: float | None = SWEEP_SECONDS,
    outbox_poll: float = 0.2,
    caldav_port: int = 0,
    settings_extra: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Runtime, Application]]:
    """The whole bot (database, embedded calendar, outbox, Application) talking to the emulator.

    `settings_extra`: further settings, e.g. an SMTP server's.
    """
    settings = Settings(
        token=emulator.token,
        api_url=emulator.base_url.removesuffix("/bot"),
        data_dir=data_dir,
        database_url=database_url,
        caldav_port=caldav_port,
        **(settings_extra or {}),
    )
    runtime = await start_runtime(settings, practice, clock=clock, accounts=accounts)
    app = build_application(
        runtime.deps,
        token=emulator.token,
        base_url=emulator.base_url,
        base_file_url=emulator.base_file_url,
        rate_limit=rate_limit,
        sweep_seconds=sweep_seconds,
    )
    try:
        async with polling(app, emulator):
            await set_commands(app)
            runtime.start_outbox(poll=outbox_poll)
            yield runtime, app
    finally:
        await runtime.close()


def running_clock(start: datetime) -> Clock:
    """A clock that reads `start` now and runs on in real time."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


def write_accounts(path: Path, accounts: dict[str, EmbeddedAccount]) -> None:
    """Hand embedded calendars to other processes (the file holds their passwords: mode 0600)."""
    path.touch(mode=0o600)
    path.write_text(json.dumps({spec: asdict(acc) for spec, acc in accounts.items()}), encoding="utf-8")


def read_accounts(path: Path) -> dict[str, EmbeddedAccount]:
    return {spec: EmbeddedAccount(**acc) for spec, acc in json.loads(path.read_text(encoding="utf-8")).items()}


def main(argv: list[str] | None = None) -> int:
    """One bot process on the emulator: `bookingbot run` with a chosen start time and shared calendars."""
    from bot.serve import run_loop, serve

    parser = argparse.ArgumentParser(prog="python -m bot.local", description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=datetime.fromisoformat, help="what the clock reads now (ISO, with zone)")
    parser.add_argument("--accounts", type=Path, help="calendars another process serves (see write_accounts)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    practice = load_practice(settings.config)
    clock = running_clock(args.start) if args.start else utcnow
    accounts = read_accounts(args.accounts) if args.accounts else None
    return run_loop(serve(settings, practice, clock=clock, accounts=accounts))


if __name__ == "__main__":
    sys.exit(main())
