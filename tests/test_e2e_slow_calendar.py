"""End to end: one specialist's calendar server hangs while a hundred of their clients press Send;
everyone else keeps being answered. Causal, not timed: the others' answers arrive while the slow
server's requests are still held (benchmarks/bench_slow_calendar.py measures the latencies)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from scheduling.booking import CALENDAR_WAITERS
from tests.fixtures.bot import CENTRE_FIRST_CONSULTATION, JONAS, running_bot
from tests.fixtures.caldav import CalDAVServer
from tests.fixtures.proxy import FaultProxy, practice_on
from tgemu import BotApiEmulator, TelegramUser

CLIENTS = 100
SENT = "Your request has been sent"
TAKEN = "this time was just taken"


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    """Poll: the things watched (emulator chats, proxy counters) have no events to wait on."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert condition(), what


def answered(client: TelegramUser) -> bool:
    return bool(client.messages) and (SENT in client.last.text or TAKEN in client.last.text)


def offers(client: TelegramUser, label: str) -> bool:
    keyboards = [m for m in client.messages if m.from_bot and m.buttons]
    return bool(keyboards) and any(label == b or label in b for row in keyboards[-1].buttons for b in row)


def asks(client: TelegramUser, text: str) -> bool:
    return any(text in m.text for m in client.messages[-2:])


async def to_summary_alone(client: TelegramUser) -> None:
    """Like to_summary, but each step waits only for this client's own screen, so a crowd walks at once."""

    def tap(label: str) -> tuple[Callable[[], bool], Callable[[], Awaitable[object]]]:
        return (lambda: offers(client, label)), (lambda: client.tap(label, wait=False))

    steps = [
        *[tap(label) for label in (*CENTRE_FIRST_CONSULTATION, "Anna Kowalska", "2", "09:00", "On site", "Skip")],
        ((lambda: asks(client, "first and last name")), (lambda: client.send("Ola Nowak", wait=False))),
        ((lambda: asks(client, "phone number")), (lambda: client.share_contact("48601234568", wait=False))),
        tap("Skip"),
        tap("I agree"),
    ]
    await client.send("/book", wait=False)
    for i, (ready, act) in enumerate(steps):
        try:
            await until(ready, "the bot answered the previous step", timeout=120)
        except TimeoutError:
            raise AssertionError(f"step {i}: {[(m.text, m.buttons) for m in client.messages[-3:]]}") from None
        await act()
    await until(lambda: offers(client, "Send request"), "the summary", timeout=120)


@pytest.mark.usefixtures("anna_password")
async def test_a_hanging_calendar_server_never_freezes_the_other_clients(
    tmp_path: Path, radicale_account: CalDAVServer
) -> None:
    # Without Telegram's flood limits: a hundred clients answered at once is the point here.
    unlimited = BotApiEmulator(global_per_second=None, chat_per_second=None)
    async with unlimited as emulator, FaultProxy(radicale_account.url) as proxy:
        practice = practice_on(radicale_account, proxy.url, radicale_account.calendar)
        async with running_bot(tmp_path, emulator, practice=practice) as bot:
            await bot.anna.send("/start")
            jonas = bot.user(JONAS, "Jonas")
            await jonas.send("/start")
            crowd = [bot.user(20_000 + i, "Client") for i in range(CLIENTS)]
            for first in range(0, CLIENTS, 10):
                await asyncio.gather(*(to_summary_alone(c) for c in crowd[first : first + 10]))
            assert all("Please check your request" in c.last.text for c in crowd)

            proxy.gate.clear()  # from now on Anna's calendar server answers nothing
            await asyncio.gather(*(c.tap("Send request", wait=False) for c in crowd))
            await until(lambda: proxy.pending > 0, "the fresh read reached Anna's server", 300)

            # Meanwhile another specialist's agenda and another client's whole way to a day picker answer
            # (each waits for its own answer only: the bot as a whole is busy with Anna's hundred).
            await jonas.send("/agenda", wait=False)
            await until(lambda: "No appointments in the coming week" in jonas.last.text, "Jonas's agenda", 300)
            # ...and not after Anna's crowd: their Sends wait for Anna's turns outside the update slots, so the
            # agenda does not queue behind them (before, it waited until all but the last slots' worth were done).
            assert sum(answered(c) for c in crowd) < CLIENTS // 2
            other = bot.user(30_000, "Other")
            await other.send("/book", wait=False)
            for label in (*CENTRE_FIRST_CONSULTATION, "Jonas Petraitis"):
                await until(lambda label=label: offers(other, label), f"the button {label}", 300)
                await other.tap(label, wait=False)
            await until(lambda: "Choose a day" in other.last.text, "Jonas's day picker", 300)
            assert proxy.pending > 0 and not proxy.gate.is_set()  # ...while Anna's server still holds its request

            # Anna's own clients are answered too, from what was last read, within the booking time limit.
            await until(lambda: all(answered(c) for c in crowd), "every client of Anna was answered", 300)
            assert proxy.pending > 0
            assert sum(SENT in c.last.text for c in crowd) == 1
            # A refused request answers with the day's other times, without asking the server again.
            loser = next(c for c in crowd if TAKEN in c.last.text)
            assert "10:00" in [b for row in loser.last.buttons for b in row]
            held = proxy.pending
            assert held <= CALENDAR_WAITERS + 2  # one shared read (and the outbox's write), not one per client

            proxy.gate.set()
            await until(lambda: proxy.pending == 0, "Anna's server caught up", 300)
