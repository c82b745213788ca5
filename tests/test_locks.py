"""Per-chat locks hold across processes: PostgreSQL advisory locks, file locks beside an SQLite database."""

from __future__ import annotations

import asyncio
import logging
import sys

from scheduling.db import create_schema, make_engine
from scheduling.locks import AdvisoryLocks, KeyLocks, key_locks

HOLDER = """
import asyncio, sys
from scheduling.db import make_engine
from scheduling.locks import key_locks

async def main(url: str, key: int) -> None:
    engine = make_engine(url)
    locks = key_locks(engine)
    async with locks.hold(key):
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await locks.close()
    await engine.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


class _Reported(logging.Handler):
    """Sets an event when the chat locks report a long wait."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "has waited" in record.getMessage():
            self.event.set()


async def test_a_chat_held_by_another_process_waits_for_it_and_other_chats_do_not(db_url: str) -> None:
    engine = make_engine(db_url)
    await create_schema(engine)
    locks = key_locks(engine, long_wait=0.05)
    reported = _Reported()
    logging.getLogger("scheduling.locks").addHandler(reported)
    chat = 5_000_000_001
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, db_url, str(chat), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert other.stdout is not None and other.stdin is not None
        assert (await asyncio.wait_for(other.stdout.readline(), 30)).strip() == b"held"
        events: list[str] = []

        async def take() -> None:
            async with locks.hold(chat):
                events.append("got it")

        waiter = asyncio.create_task(take())
        async with locks.hold(chat + 1):  # another chat is not held up
            events.append("other chat")
        await asyncio.wait_for(reported.event.wait(), 30)  # the waiter reports its long wait ...
        await asyncio.sleep(0.1)
        assert events == ["other chat"]  # ... and goes on waiting: going ahead would break the chat's order
        events.append("released")
        other.stdin.write(b"go\n")
        await other.stdin.drain()
        await asyncio.wait_for(waiter, 30)
        assert events == ["other chat", "released", "got it"]
        assert await asyncio.wait_for(other.wait(), 30) == 0
    finally:
        logging.getLogger("scheduling.locks").removeHandler(reported)
        if other.returncode is None:
            other.kill()
            await other.wait()
        await locks.close()
        await engine.dispose()


async def test_one_process_runs_a_chats_holders_one_at_a_time(db_url: str) -> None:
    engine = make_engine(db_url)
    await create_schema(engine)
    locks = key_locks(engine)
    order: list[str] = []

    async def work(name: str) -> None:
        async with locks.hold(42):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    try:
        await asyncio.gather(work("a"), work("b"), work("c"))
    finally:
        await locks.close()
        await engine.dispose()
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]


async def test_a_waiter_on_postgresql_tries_again_when_the_holder_releases(pg_url: str) -> None:
    engine = make_engine(pg_url)
    await create_schema(engine)
    # Without announced releases this waiter would try once a minute.
    locks = KeyLocks(AdvisoryLocks(engine, recheck=60.0))
    chat = 5_000_000_101
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, pg_url, str(chat), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    tries = 0
    call = locks.shared._call  # type: ignore[union-attr]

    async def counted(sql: str, key: int) -> bool:
        nonlocal tries
        tries += "pg_try_advisory_lock" in sql
        return await call(sql, key)

    locks.shared._call = counted  # type: ignore[union-attr]
    try:
        assert other.stdout is not None and other.stdin is not None
        assert (await asyncio.wait_for(other.stdout.readline(), 30)).strip() == b"held"
        waiter = asyncio.create_task(locks.hold(chat).__aenter__())
        await asyncio.sleep(1.0)
        assert (waiter.done(), tries) == (False, 1)  # polling (1 ms, doubling to 20 ms) had tried ~50 times
        other.stdin.write(b"go\n")
        await other.stdin.drain()
        await asyncio.wait_for(waiter, 30)  # woken by the release: the next try was a minute away
        assert tries == 2
        assert await asyncio.wait_for(other.wait(), 30) == 0
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
        await locks.close()
        await engine.dispose()
