"""`bookingbot run`: long polling or webhook, the web endpoints, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

from aiohttp import web
from telegram.error import InvalidToken, NetworkError
from telegram.ext import Application

from bot.app import build_application, set_commands
from bot.runtime import Runtime, start_runtime
from bot.settings import ENV, Settings, SettingsError, require_token
from bot.web import RedactingAccessLogger, feed_urls, make_web_app
from caldav_bridge.embedded import EmbeddedAccount
from scheduling.booking import Clock, utcnow
from scheduling.config import Practice
from scheduling.lint import unapprovable

log = logging.getLogger(__name__)

# Webhook posts Telegram may have under way at once (its most; the default is 40): several processes behind
# one URL share them, and a tap's post is held up to webhook_reply.WAIT for the answer to ride on it.
WEBHOOK_CONNECTIONS = 100

# Telegram unreachable at start: tried again after 1 s, then twice as long each time, at most a minute apart.
TELEGRAM_RETRY_FIRST = 1.0
TELEGRAM_RETRY_MAX = 60.0
# The cyclic collector's thresholds once the bot runs: the youngest generation every 20,000 allocations instead
# of 700, the older ones as rarely. An update allocates thousands of short-lived objects that reference counting
# frees anyway; at the defaults the collector scanned them about 50 times a second (benchmarks/README.md).
GC_THRESHOLDS = (20_000, 20, 20)
# glibc's malloc arenas: by default every thread that allocates (aiosqlite's, one per connection, the default
# executor's, libuv's resolver) may get one of its own, up to 8 per core, each holding on to what it freed. The
# bot's threads mostly wait, or allocate under the GIL; two arenas (MALLOC_ARENA_MAX=2) cost no throughput and
# keep megabytes of RSS off under load (benchmarks/README.md).
M_ARENA_MAX = -8  # mallopt's parameter number
MALLOC_ARENAS = 2


def glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc; None elsewhere (musl, macOS, Windows)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL(None)
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or no such name (macOS, musl)
        return None


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas as MALLOC_ARENA_MAX=2 would (a limit set in the environment wins).

    Before the bot starts threads: glibc fixes the limit when a second thread first allocates.
    """
    libc = glibc()
    chosen = "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", "")
    if libc is not None and not chosen:
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run on uvloop's event loop where it is installed: the loop's own work is a tenth of the bot's CPU."""
    limit_malloc_arenas()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def settle_heap() -> None:
    """Keep what start-up built out of the collector's scans from now on, and collect young objects less often.

    Under load the collector took 9 % of the bot's CPU, half of it in full collections re-scanning the 200,000
    objects of the imported modules, which live as long as the process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def on_signals(callback: Callable[[], object], *signals: signal.Signals) -> Callable[[], None]:
    """Call `callback` on these signals while the loop runs; returns the function that stops listening.

    Signal handlers need the main thread of a Unix process: elsewhere (Windows, a test's thread) this does nothing.
    """
    loop = asyncio.get_running_loop()
    if sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        return lambda: None
    for sig in signals:
        loop.add_signal_handler(sig, callback)

    def stop_listening() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return stop_listening


async def print_calendars(
    runtime: Runtime, out: TextIO | None = None, feed_base: str | None = None, *, everything: bool = False
) -> None:
    """Where specialists find their calendars (shown on the console only, never logged).

    A password is printed when it was just created; after that only `bookingbot calendars` shows it, and
    the feed addresses (passwords too). The demo (`everything`) prints all of them every time.
    """
    out = out or sys.stdout
    created = set(runtime.embedded.created) if runtime.embedded is not None else set()
    if runtime.accounts:
        print("Embedded CalDAV calendars (add them in Apple Calendar, Thunderbird or DAVx5):", file=out)
        for spec_id, acc in runtime.accounts.items():
            if everything or spec_id in created:
                print(f"  {spec_id}: {acc.calendar_url}  user {acc.username}  password {acc.password}", file=out)
            else:
                print(f"  {spec_id}: {acc.calendar_url}  user {acc.username}", file=out)
    if not everything:
        print("`bookingbot calendars` prints the calendars' passwords and the read-only feed addresses.", file=out)
        return
    urls = await feed_urls(runtime.settings, runtime.store, runtime.practice, feed_base)
    print("Read-only calendar feeds (subscribe in Outlook or any calendar app):", file=out)
    for spec_id, url in urls.items():
        print(f"  {spec_id}: {url}", file=out)


def warn_unapprovable(practice: Practice, out: TextIO | None = None) -> None:
    """Say loudly, on the console and in the log, whose requests nobody can approve (they would only expire)."""
    for spec in unapprovable(practice):
        message = (
            f"specialists[{spec.id}].telegram_id: nobody can approve their requests, which will expire unanswered; "
            "set it to their Telegram user id (they send /id to the bot) or list admins under [practice]"
        )
        log.warning("%s", message)
        print(f"WARNING: {message}", file=out or sys.stderr, flush=True)


async def reach_telegram(app: Application, settings: Settings, stop: asyncio.Event) -> bool:
    """Initialise the Application, waiting with backoff while the Bot API does not answer; False if stopped first.

    One warning says Telegram is unreachable (no traceback, never the token); one line says when it answers.
    """
    delay, warned = TELEGRAM_RETRY_FIRST, False
    while True:
        try:
            await app.initialize()
        except InvalidToken:
            raise SettingsError(
                f"{ENV['token']}: Telegram refused the bot's token; copy it again from @BotFather"
            ) from None
        except NetworkError as exc:  # TimedOut is one too
            if not warned:
                log.warning(
                    "Telegram at %s does not answer (%s); trying again with backoff until it does",
                    settings.api_url,
                    type(exc).__name__,
                )
                warned = True
            else:
                log.debug("Telegram still unreachable (%s); next try in %g s", type(exc).__name__, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, TELEGRAM_RETRY_MAX)
                continue
            await app.bot.shutdown()
            return False
        if warned:
            log.info("Telegram answers; the bot is starting")
        return True


async def serve(
    settings: Settings,
    practice: Practice,
    *,
    clock: Clock = utcnow,
    accounts: dict[str, EmbeddedAccount] | None = None,
) -> int:
    """Run until SIGTERM or SIGINT; the update being handled finishes and the outbox is flushed first.

    `clock` and `accounts` are for replicas on one machine run by the tests and benchmarks (`bot.local`).
    """
    token = require_token(settings)
    warn_unapprovable(practice)
    runtime = await start_runtime(settings, practice, clock=clock, accounts=accounts)
    await print_calendars(runtime)
    app = build_application(
        runtime.deps, token=token, base_url=settings.bot_base_url, base_file_url=settings.bot_file_url
    )
    stop = asyncio.Event()
    on_signals(stop.set, signal.SIGTERM, signal.SIGINT)
    host, port = settings.listen_host_port
    site_runner = web.AppRunner(make_web_app(runtime, app, settings), access_log_class=RedactingAccessLogger)
    try:
        if not await reach_telegram(app, settings, stop):
            log.info("stopped before Telegram answered")
            return 0
        async with app:
            await app.start()
            try:
                await set_commands(app)
                settle_heap()
                runtime.start_outbox()
                await site_runner.setup()
                await web.TCPSite(site_runner, host, port).start()
                if settings.webhook_url:
                    await app.bot.set_webhook(
                        settings.webhook_url,
                        secret_token=settings.webhook_secret,
                        allowed_updates=["message", "callback_query"],
                        max_connections=WEBHOOK_CONNECTIONS,
                    )
                    log.info("webhook mode: Telegram posts to the configured URL; listening on %s:%s", host, port)
                else:
                    await app.bot.delete_webhook()
                    assert app.updater is not None
                    await app.updater.start_polling(allowed_updates=["message", "callback_query"])
                    log.info("long polling; health and feeds on http://%s:%s", host, port)
                await stop.wait()
                log.info("stopping: finishing the updates under way")
            finally:
                if app.updater is not None and app.updater.running:
                    await app.updater.stop()
                await site_runner.cleanup()
                await app.stop()
    finally:
        await runtime.close()
    return 0
