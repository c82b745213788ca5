"""Serialising work per key (a chat) across every process that shares the database.

PostgreSQL: a session-level advisory lock per key, taken and released on one connection the process keeps.
SQLite: a POSIX byte-range lock in a file beside the database, which every process on the machine sees.
Within one process an asyncio lock per key comes first, so a process asks the database (or the file)
once per key, whatever the number of its own updates waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

# How many keys (chats) one process works on at once: the update processor's concurrency.
CAPACITY = 32
# A wait this long is logged (and again each time as long again): a holder is slow, a flood wait or a
# slow calendar. The waiter still waits: going ahead would run a chat's updates out of order. A holder
# never waits for ever: its network calls have timeouts, and a process that dies releases its locks.
LONG_WAIT = 30.0
# Advisory lock keys are one bigint space per database; chat keys carry this tag in their top bits.
_PG_TAG = 0x43 << 56  # "C"
# Byte offsets in the SQLite lock file: Telegram ids are within +-2**53, so offsets stay positive.
_FILE_OFFSET = 1 << 60
# Tries back off to _POLL_MAX while a wait is short, then to _POLL_SLOW: a long wait costs few queries.
_POLL_FIRST, _POLL_MAX, _POLL_SLOW, _SHORT = 0.001, 0.02, 0.25, 1.0
# PostgreSQL: a process releasing a chat says so on this channel, and a waiter elsewhere tries again then.
_RELEASED = "bookingbot_chat_released"


async def _poll(
    attempt: Callable[[], Awaitable[bool]],
    long_wait: float,
    wake: asyncio.Event | None = None,
    recheck: float = _POLL_SLOW,
) -> None:
    """Try until `attempt()` gets the lock; a wait past `long_wait` is logged, never given up.

    Polling, not a blocking wait: a waiter holds no thread and no connection. Without `wake` the tries back
    off; with it, the next try comes when `wake` is set (the holder released), or after `recheck` at the latest.
    """
    loop = asyncio.get_running_loop()
    began = loop.time()
    delay, report = _POLL_FIRST, began + long_wait
    while not await attempt():
        now = loop.time()
        if now >= report:
            log.warning("a chat has waited %.0f s for another process to finish with it", now - began)
            report = now + long_wait
        if wake is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX if now - began < _SHORT else _POLL_SLOW)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), recheck)


class SharedLocks(Protocol):
    """A lock per key that other processes respect."""

    def hold(self, key: int) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def close(self) -> None: ...


class AdvisoryLocks:
    """Session-level advisory locks, all on one connection this process keeps: try, and wait while another holds.

    One connection per process whatever the number of chats under way (a connection per held chat would
    use up the server's connections); a process that dies loses its connection, and with it its locks.
    A release is announced with NOTIFY, which the waiter's process LISTENs for: with a chat's updates landing
    on two processes in turn, polling for the lock had cost a sixth of each process's CPU.
    """

    def __init__(self, engine: AsyncEngine, long_wait: float = LONG_WAIT, recheck: float = _POLL_SLOW):
        self._engine = create_async_engine(engine.url, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT")
        self._conn: AsyncConnection | None = None
        self._turn = asyncio.Lock()  # one statement at a time on the connection
        self._long_wait = long_wait
        self._recheck = recheck  # a try this often whatever the announcements: a holder's process may have died
        self._waiting: dict[int, asyncio.Event] = {}  # key -> set when another process releases it

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        tagged = _PG_TAG ^ key
        locked = await self._acquire(tagged)
        try:
            yield
        finally:
            if locked:
                with contextlib.suppress(DBAPIError):
                    await self._call(
                        f"SELECT pg_advisory_unlock(:key), pg_notify('{_RELEASED}', CAST(:key AS text))", tagged
                    )

    async def _acquire(self, key: int) -> bool:
        # KeyLocks lets one update per key of this process get here at a time: the key's event is its own.
        released = self._waiting[key] = asyncio.Event()

        async def attempt() -> bool:
            released.clear()  # a release announced from now on wakes the wait after this try
            return await self._call("SELECT pg_try_advisory_lock(:key)", key)

        try:
            await _poll(attempt, self._long_wait, released, self._recheck)
            return True
        except DBAPIError:
            log.warning("chat locks: the database did not answer; going ahead without the lock")
            return False
        finally:
            del self._waiting[key]

    def _on_release(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        released = self._waiting.get(int(payload))
        if released is not None:
            released.set()

    async def _call(self, sql: str, key: int) -> bool:
        async with self._turn:
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                self._conn = await self._engine.connect()
                raw = await self._conn.get_raw_connection()
                try:
                    await raw.driver_connection.add_listener(_RELEASED, self._on_release)  # type: ignore[union-attr]
                except Exception as exc:  # the driver's own errors: the database did not answer
                    await self._conn.close()
                    self._conn = None
                    raise DBAPIError("LISTEN", None, exc) from exc
            try:
                return bool((await self._conn.execute(text(sql), {"key": key})).scalar())
            except DBAPIError:
                await self._conn.close()
                self._conn = None
                raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        await self._engine.dispose()


class FileLocks:
    """fcntl byte-range locks, one byte per key, in one file that every process keeps open."""

    def __init__(self, path: Path, long_wait: float = LONG_WAIT):
        import fcntl

        self._fcntl = fcntl
        path.parent.mkdir(parents=True, exist_ok=True)
        # Kept open for the life of the process: closing any descriptor of the file drops all its locks.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._long_wait = long_wait

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        offset = _FILE_OFFSET + key
        await self._acquire(offset)
        try:
            yield
        finally:
            self._fcntl.lockf(self._fd, self._fcntl.LOCK_UN, 1, offset)

    async def _acquire(self, offset: int) -> None:
        async def attempt() -> bool:
            try:
                self._fcntl.lockf(self._fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB, 1, offset)
            except OSError:  # EAGAIN or EACCES: another process holds it
                return False
            return True

        await _poll(attempt, self._long_wait)

    async def close(self) -> None:
        os.close(self._fd)


class KeyLocks:
    """One key's holders run one at a time: in this process by an asyncio lock, across processes by `shared`."""

    def __init__(self, shared: SharedLocks | None = None, capacity: int = CAPACITY):
        self.shared = shared
        self.capacity = capacity
        self._local: dict[int, tuple[asyncio.Lock, int]] = {}  # key -> (lock, holders and waiters)

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._local.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._local[key] = (lock, users + 1)
        try:
            async with lock:
                if self.shared is None:
                    yield
                else:
                    async with self.shared.hold(key):
                        yield
        finally:
            lock, users = self._local[key]
            if users == 1:
                del self._local[key]  # forget idle keys so the map stays small
            else:
                self._local[key] = (lock, users - 1)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


def key_locks(engine: AsyncEngine, capacity: int = CAPACITY, long_wait: float = LONG_WAIT) -> KeyLocks:
    """Locks that hold across every process sharing this engine's database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return KeyLocks(AdvisoryLocks(engine, long_wait), capacity)
    if url.database in (None, "", ":memory:"):
        return KeyLocks(None, capacity)  # an in-memory database has one process
    path = Path(url.database).expanduser().resolve().with_suffix(".locks")
    return KeyLocks(FileLocks(path, long_wait), capacity)
