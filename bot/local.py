"""Run the real bot against the local Bot API emulator: for the demo, the benchmarks and the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from telegram.ext import Application

from bot.app import SWEEP_SECONDS, build_application, set_commands
from bot.runtime import Runtime, start_runtime
from bot.settings import Settings
from caldav_bridge.embedded import EmbeddedAccount
from scheduling.booking import Clock, utcnow
from scheduling.config import Practice
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
) -> AsyncIterator[tuple[Runtime, Application]]:
    """The whole bot (database, embedded calendar, outbox, Application) talking to the emulator."""
    settings = Settings(
        token=emulator.token,
        api_url=emulator.base_url.removesuffix("/bot"),
        data_dir=data_dir,
        database_url=database_url,
        caldav_port=caldav_port,
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
