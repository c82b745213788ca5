"""The bot's own CPU per Bot API call and per update dispatch, against the Bot API emulator in a process of its own.

The Application is the production one (`build_application`: the HTTP client, the rate limiter, the per-chat
processor with its file locks, the handler list), with each handler's callback but the gate replaced by a no-op,
so what is timed is PTB and our wiring, not the dialogs. Only this process's CPU is counted (time.process_time):
the emulator's work is in its own process.

Run: .venv/bin/python -m benchmarks.bench_botapi [--calls 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import Application, TypeHandler

from benchmarks.bench_e2e import TOKEN, EmulatorProcess
from bot.app import build_application
from bot.handlers import common
from scheduling.locks import FileLocks, KeyLocks

CHAT = 700001
TEXT = (
    "<b>Choose a day</b>\nCounselling, 50 min, with Anna Nowak at the Old Town office.\n" + "Free days are marked. " * 6
)


def _keyboard(tag: str) -> InlineKeyboardMarkup:
    """A month picker's shape: five weeks of seven days, a navigation row and a back button."""
    rows = [
        [
            InlineKeyboardButton(f"{7 * w + d + 1}", callback_data=f"b|d|2026-03-{7 * w + d + 1:02d}|{tag}")
            for d in range(7)
        ]
        for w in range(5)
    ]
    rows.append([InlineKeyboardButton("<", callback_data="b|m|-1"), InlineKeyboardButton(">", callback_data="b|m|1")])
    rows.append([InlineKeyboardButton("Back", callback_data="b|back")])
    return InlineKeyboardMarkup(rows)


async def _noop(update: object, context: object) -> None:
    """Stands in for a dialog handler."""


def _cpu() -> tuple[float, float]:
    """This process's user and system CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def _cpu_per(n: int, action: Callable[[int], Awaitable[Any]]) -> tuple[float, float]:
    """User and system CPU microseconds of this process per action, the actions run one after another."""
    user, system = _cpu()
    for i in range(n):
        await action(i)
    user_after, system_after = _cpu()
    return (user_after - user) / n * 1e6, (system_after - system) / n * 1e6


async def _taps(emu: str, http: aiohttp.ClientSession, message_id: int, n: int) -> None:
    for i in range(n):
        async with http.post(f"{emu}/_emu/users/{CHAT}/callback", json={"data": f"b|d|{i}", "message_id": message_id}):
            pass


async def run(calls: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench_botapi_"))
    emulator = await EmulatorProcess.start(workdir / "tgemu.log", realistic_limits=False)
    chats = KeyLocks(FileLocks(workdir / "bench.locks"))
    d = SimpleNamespace(chats=chats, practice=SimpleNamespace(specialists=[]), connections=None)
    app: Application = build_application(
        d,  # type: ignore[arg-type]
        token=TOKEN,
        base_url=f"{emulator.url}/bot",
        base_file_url=f"{emulator.url}/file/bot",
        sweep_seconds=None,
    )
    for group in app.handlers.values():
        for handler in group:
            if not isinstance(handler, TypeHandler):  # the gate stays: it runs before every update
                handler.callback = _noop
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        async with aiohttp.ClientSession() as http, app:
            async with http.post(f"{emulator.url}/_emu/users/{CHAT}", json={"first_name": "Ada"}):
                pass
            async with http.post(f"{emulator.url}/_emu/users/{CHAT}/message", json={"text": "/start"}):
                pass
            bot = app.bot
            processor = app.update_processor
            offset = max((u.update_id for u in await bot.get_updates(timeout=0)), default=0) + 1
            sent = await bot.send_message(CHAT, TEXT, parse_mode=ParseMode.HTML, reply_markup=_keyboard("x"))
            markups = [_keyboard("a"), _keyboard("b")]

            async def edit(i: int) -> None:
                await bot.edit_message_text(
                    TEXT, CHAT, sent.message_id, parse_mode=ParseMode.HTML, reply_markup=markups[i % 2]
                )

            async def edit_quietly(i: int) -> None:
                await common.edit_quietly(bot, CHAT, sent.message_id, text=TEXT, markup=markups[i % 2])

            async def send(i: int) -> None:
                await bot.send_message(CHAT, TEXT, parse_mode=ParseMode.HTML, reply_markup=markups[i % 2])

            for _ in range(rounds):
                await _taps(emulator.url, http, sent.message_id, calls)
                user, system = _cpu()
                updates: list[Update] = []
                while len(updates) < calls:
                    got = await bot.get_updates(offset=offset, timeout=0)
                    updates.extend(got)
                    offset = max((u.update_id for u in got), default=offset - 1) + 1
                user_after, system_after = _cpu()
                results.setdefault("getUpdates + Update.de_json, per update", []).append(
                    ((user_after - user) / calls * 1e6, (system_after - system) / calls * 1e6)
                )
                ids = [u.callback_query.id for u in updates if u.callback_query is not None]

                async def answer(i: int, ids: list[str] = ids) -> None:
                    await bot.answer_callback_query(ids[i])

                async def dispatch(i: int, updates: list[Update] = updates) -> None:
                    update = updates[i]
                    await processor.process_update(update, app.process_update(update))

                results.setdefault("dispatch (processor, locks, gate, handler match), per update", []).append(
                    await _cpu_per(len(updates), dispatch)
                )
                results.setdefault("answerCallbackQuery, per call", []).append(await _cpu_per(len(ids), answer))
                results.setdefault("editMessageText with a 37-button keyboard, per call", []).append(
                    await _cpu_per(calls, edit)
                )
                results.setdefault("the same edit through handlers.common.edit_quietly, per call", []).append(
                    await _cpu_per(calls, edit_quietly)
                )
                results.setdefault("sendMessage with a 37-button keyboard, per call", []).append(
                    await _cpu_per(calls // 4, send)
                )
    finally:
        await chats.close()
        await emulator.stop()
    print(f"bot process CPU, microseconds: user+system (of it system), median of {rounds} rounds of {calls}")
    for name, values in results.items():
        total = statistics.median(u + s for u, s in values)
        system = statistics.median(s for _, s in values)
        rounds_text = ", ".join(f"{u + s:.0f}" for u, s in values)
        print(f"  {total:6.0f} ({system:4.0f})  {name}   [{rounds_text}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls (and taps) per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed (default 3)")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rounds))


if __name__ == "__main__":
    main()
