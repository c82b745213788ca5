"""Durable queues in the database (calendar writes, partner webhooks): one claim/lease/retry mechanism."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from scheduling.db import OutboxRow, PartnerEventRow

log = logging.getLogger(__name__)

RETRY_FIRST = timedelta(seconds=5)
RETRY_MAX = timedelta(minutes=10)
ERROR_MAX_CHARS = 500


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the `attempts`-th failure: 5 s doubling, capped at 10 min, up to 10% earlier."""
    base = min(RETRY_FIRST * (2 ** min(attempts - 1, 30)), RETRY_MAX)
    # Jitter spreads retries of many rows that failed together (e.g. a server outage).
    return base * (1 - random.uniform(0, 0.1))


# Durable queues (calendar writes, partner webhooks) share one claim/lease mechanism: rows with
# appointment_id, next_attempt_at, locked_until, attempts, last_error and done_at.
QueueRow = TypeVar("QueueRow", OutboxRow, PartnerEventRow)


async def claim_queue(
    session: AsyncSession, model: type[QueueRow], now: datetime, *, limit: int, lease: timedelta
) -> list[QueueRow]:
    """Lease due rows of a queue table to this worker; a row leased by another worker is never returned."""
    free = or_(model.locked_until.is_(None), model.locked_until <= now)
    older = aliased(model)
    due = (
        select(model.id)
        .where(
            model.done_at.is_(None),
            model.next_attempt_at <= now,
            free,
            # Only the oldest pending row of an appointment: its deliveries stay in order,
            # one worker at a time.
            ~exists().where(
                older.appointment_id == model.appointment_id,
                older.done_at.is_(None),
                older.id < model.id,
            ),
        )
        .order_by(model.next_attempt_at, model.id)
        .limit(limit)
        # PostgreSQL: pass over rows another claimer is taking right now. SQLite has no
        # row locks; its UPDATE below takes the write lock before reading, which serialises.
        .with_for_update(skip_locked=True)
    )
    # One statement, conditions checked again by the UPDATE: whoever updates first owns a row.
    claimed = await session.scalars(
        update(model)
        .where(model.id.in_(due.scalar_subquery()), model.done_at.is_(None), free)
        .values(locked_until=now + lease)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    claimed_ids = list(claimed)
    if not claimed_ids:
        return []
    rows = await session.scalars(
        select(model)
        .where(model.id.in_(claimed_ids))
        .order_by(model.next_attempt_at, model.id)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def queue_done(session: AsyncSession, model: type[QueueRow], row_id: int, at: datetime) -> None:
    await session.execute(
        update(model)
        .where(model.id == row_id)
        .values(done_at=at, locked_until=None)
        .execution_options(synchronize_session="fetch")
    )


async def queue_failed(session: AsyncSession, model: type[QueueRow], row_id: int, at: datetime, error: str) -> datetime:
    """Record a failed attempt of a queue row and schedule the next one; returns when that will be."""
    attempts = await session.scalar(
        update(model)
        .where(model.id == row_id)
        .values(attempts=model.attempts + 1)
        .returning(model.attempts)
        .execution_options(synchronize_session=False)
    )
    if attempts is None:
        raise LookupError(f"{model.__tablename__} row {row_id} does not exist")
    next_at = at + retry_delay(attempts)
    await session.execute(
        update(model)
        .where(model.id == row_id)
        .values(next_attempt_at=next_at, locked_until=None, last_error=error[:ERROR_MAX_CHARS])
        .execution_options(synchronize_session="fetch")
    )
    return next_at


class Drainer(ABC):
    """The loop around a queue: `run_once` now and then, at once on `wake()`, until `stop()`."""

    name = "queue"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False

    @abstractmethod
    async def run_once(self) -> int:
        """Process the rows due now; returns how many succeeded."""

    def wake(self) -> None:
        """Process the queue now (a row was just added) instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run_forever(self, poll: float = 2.0) -> None:
        """Drain the queue until stop(); wakes every `poll` seconds or on wake()."""
        self._stopping = False
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                # A database hiccup must not kill the worker; rows stay due and are retried.
                log.exception("%s pass failed", self.name)
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)
