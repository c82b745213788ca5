"""Serialising work per key (a chat) across every process that shares the database.

PostgreSQL: an advisory transaction lock on a connection of its own, held while the work runs.
SQLite: a POSIX byte-range lock in a file beside the database, which every process on the machine sees.
Within one process an asyncio lock per key comes first, so a process asks the database (or the file)
once per key, whatever the number of its own updates waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

# How many keys one process holds at once on PostgreSQL (one connection each): the update processor's
# concurrency is taken from here, so that an update never waits for a connection held by another.
CAPACITY = 32
# A holder that does not finish in this time is stuck (a hung network call): the waiter goes ahead
# unserialised rather than leave the person without an answer.
WAIT_LIMIT = 30.0
# Advisory lock keys are one bigint space per database; chat keys carry this tag in their top bits.
_PG_TAG = 0x43 << 56  # "C"
# Byte offsets in the SQLite lock file: Telegram ids are within +-2**53, so offsets stay positive.
_FILE_OFFSET = 1 << 60
_POLL_FIRST, _POLL_MAX = 0.001, 0.02


class SharedLocks(Protocol):
    """A lock per key that other processes respect."""

    def hold(self, key: int) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def close(self) -> None: ...


class AdvisoryLocks:
    """pg_advisory_xact_lock(key) in a transaction of its own; ending the transaction releases it."""

    def __init__(self, engine: AsyncEngine, capacity: int = CAPACITY, wait_limit: float = WAIT_LIMIT):
        # A pool of its own: a holder never competes with the work it serialises for a connection.
        self._engine = create_async_engine(
            engine.url, pool_size=capacity, max_overflow=0, pool_pre_ping=True, pool_timeout=wait_limit
        )
        self._wait_ms = int(wait_limit * 1000)

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        async with self._engine.connect() as conn:
            try:
                await conn.execute(text(f"SET LOCAL lock_timeout = {self._wait_ms}"))
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_TAG ^ key})
            except DBAPIError:
                log.warning("a chat stayed locked for %.0f s; going ahead without the lock", self._wait_ms / 1000)
            try:
                yield
            finally:
                await conn.rollback()  # ends the transaction, and with it the lock

    async def close(self) -> None:
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
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self._wait_limit, _POLL_FIRST
        while True:
            try:
                self._fcntl.lockf(self._fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB, 1, offset)
                return True
            except OSError:  # EAGAIN or EACCES: another process holds it
                if loop.time() >= deadline:
                    log.warning("a chat stayed locked for %.0f s; going ahead without the lock", self._wait_limit)
                    return False
                # Polling, not a blocking call in a thread: a waiter costs no thread, and waits are short.
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)

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
        return KeyLocks(AdvisoryLocks(engine, capacity), capacity)
    if url.database in (None, "", ":memory:"):
        return KeyLocks(None, capacity)  # an in-memory database has one process
    return KeyLocks(FileLocks(Path(url.database).expanduser().resolve().with_suffix(".locks")), capacity)
