"""SQLite statements on the event loop's own thread, and only what waits (a lock, a commit's fsync) on aiosqlite's.

An SQLite statement on a small indexed database takes microseconds; handing it to aiosqlite's thread and back
(a queue, a future, a wake-up of the loop) costs a hundred times that, for every cursor, execute, fetch and
close. So a statement runs where it is called, and goes to the connection's thread only when it would wait:

- a write lock another connection holds (this process's or another's): the inline try has no busy timeout,
  and the thread then waits for the lock as SQLite's own busy handler would, without stopping the loop;
- the commit of a transaction that wrote, which syncs the WAL to disk (except in `unsynced()`).

One connection is used by one coroutine at a time (SQLAlchemy's pool), so its thread and the loop never
run statements on it at once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import aiosqlite

# SQLite's own busy handler backs off like this (sqliteDefaultBusyCallback), in seconds.
_BACKOFF = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1)


def _busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or str(
        error
    ).startswith("database is locked")


def _waiting(function: Callable[[], Any], timeout: float) -> Callable[[], Any]:
    """`function`, tried again while the database is locked, for up to `timeout` seconds (on the thread)."""

    def run() -> Any:
        deadline = time.monotonic() + timeout
        for attempt in range(1_000_000):
            try:
                return function()
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
        raise AssertionError("unreachable")

    return run


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run inline unless they would wait."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], busy_timeout: float):
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as SQLAlchemy makes aiosqlite's: a process never waits on it to exit
        self._busy_timeout = busy_timeout
        self._synced = True

    @contextlib.asynccontextmanager
    async def unsynced(self) -> AsyncIterator[None]:
        """Transactions begun in this block commit inline, without syncing the WAL (synchronous=NORMAL).

        Such a commit survives the process crashing, not the machine losing power before the WAL is next
        synced (by any synced commit or a checkpoint). SQLite allows the change only between transactions.
        """
        await self._execute(self._conn.execute, "PRAGMA synchronous = NORMAL")
        self._synced = False
        try:
            yield
        finally:
            self._synced = True
            await self._execute(self._conn.execute, "PRAGMA synchronous = FULL")

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        if not self._running or conn is None:
            raise ValueError("Connection closed")
        if self._synced and getattr(fn, "__self__", None) is conn and fn.__name__ == "commit" and conn.in_transaction:
            return await super()._execute(fn, *args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
        # Nothing was written by the failed try (the lock was not had), so trying again is what SQLite's busy
        # handler would have done.
        return await super()._execute(_waiting(partial(fn, *args, **kwargs), self._busy_timeout))


def connector(database: str, busy_timeout: float) -> Callable[[], InlineConnection]:
    """An `async_creator` for SQLAlchemy: connections to `database` that run their statements inline."""

    def connect() -> sqlite3.Connection:
        # The loop's thread uses a connection its own thread opened; never both at once (see above).
        return sqlite3.connect(database, check_same_thread=False, timeout=0)

    return lambda: InlineConnection(connect, busy_timeout)
