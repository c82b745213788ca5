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
# A holder that does not finish in this time is stuck (a hung network call): the waiter goes ahead
# unserialised rather than leave the person without an answer.
WAIT_LIMIT = 30.0
# Advisory lock keys are one bigint space per database; chat keys carry this tag in their top bits.
_PG_TAG = 0x43 << 56  # "C"
# Byte offsets in the SQLite lock file: Telegram ids are within +-2**53, so offsets stay positive.
_FILE_OFFSET = 1 << 60
_POLL_FIRST, _POLL_MAX = 0.001, 0.02


async def _poll(attempt: Callable[[], Awaitable[bool]], wait_limit: float) -> bool:
    """Try until `attempt()` gets the lock, backing off; False once `wait_limit` has passed.

    Polling, not a blocking wait: a waiter holds no thread and no connection, and waits are short
    (only one chat's updates landing on two processes at once contend).
    """
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + wait_limit, _POLL_FIRST
    while not await attempt():
        if loop.time() >= deadline:
            log.warning("a chat stayed locked for %.0f s; going ahead without the lock", wait_limit)
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)
    return True


class SharedLocks(Protocol):
    """A lock per key that other processes respect."""

    def hold(self, key: int) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def close(self) -> None: ...


class AdvisoryLocks:
    """Session-level advisory locks, all on one connection this process keeps: try, and poll while another holds.

    One connection per process whatever the number of chats under way (a connection per held chat would
    use up the server's connections); a process that dies loses its connection, and with it its locks.
    """

    def __init__(self, engine: AsyncEngine, wait_limit: float = WAIT_LIMIT):
        self._engine = create_async_engine(engine.url, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT")
        self._conn: AsyncConnection | None = None
        self._turn = asyncio.Lock()  # one statement at a time on the connection
        self._wait_limit = wait_limit

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        tagged = _PG_TAG ^ key
        locked = await self._acquire(tagged)
        try:
            yield
        finally:
            if locked:
                with contextlib.suppress(DBAPIError):
                    await self._call("SELECT pg_advisory_unlock(:key)", tagged)

    async def _acquire(self, key: int) -> bool:
        async def attempt() -> bool:
            return await self._call("SELECT pg_try_advisory_lock(:key)", key)

        try:
            return await _poll(attempt, self._wait_limit)
        except DBAPIError:
            log.warning("chat locks: the database did not answer; going ahead without the lock")
            return False

    async def _call(self, sql: str, key: int) -> bool:
        async with self._turn:
            if self._conn is None or self._conn.closed or self._conn.invalidated:
                self._conn = await self._engine.connect()
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

    def __init__(self, path: Path, wait_limit: float = WAIT_LIMIT):
        import fcntl

        self._fcntl = fcntl
        path.parent.mkdir(parents=True, exist_ok=True)
        # Kept open for the life of the process: closing any descriptor of the file drops all its locks.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._wait_limit = wait_limit

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        offset = _FILE_OFFSET + key
        locked = await self._acquire(offset)
        try:
            yield
        finally:
            if locked:
                self._fcntl.lockf(self._fd, self._fcntl.LOCK_UN, 1, offset)

    async def _acquire(self, offset: int) -> bool:
        async def attempt() -> bool:
            try:
                self._fcntl.lockf(self._fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB, 1, offset)
            except OSError:  # EAGAIN or EACCES: another process holds it
                return False
            return True

        return await _poll(attempt, self._wait_limit)

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


def key_locks(engine: AsyncEngine, capacity: int = CAPACITY) -> KeyLocks:
    """Locks that hold across every process sharing this engine's database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return KeyLocks(AdvisoryLocks(engine), capacity)
    if url.database in (None, "", ":memory:"):
        return KeyLocks(None, capacity)  # an in-memory database has one process
    return KeyLocks(FileLocks(Path(url.database).expanduser().resolve().with_suffix(".locks")), capacity)
