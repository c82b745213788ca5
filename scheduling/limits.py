"""Abuse limits on clients' own requests: how many may wait for a decision, how many a day, how fast.

Checked twice: once cheaply before the calendar is read (a client over a limit costs the calendar
server nothing), and finally in the transaction that creates the request, under the client's lock,
so that concurrent Sends, from any process, never get past them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from scheduling.config import Limits
from scheduling.store import Store, Tx

DAY = timedelta(hours=24)
SEND_WINDOW = timedelta(minutes=1)


class Limit(StrEnum):
    PENDING = "pending"  # too many requests waiting for a decision
    DAY = "day"  # too many requests in 24 hours
    RATE = "rate"  # Send tapped too often


class LimitReached(Exception):
    """The client asked for more than the practice allows; `limit` says which rule, `allowed` its number."""

    def __init__(self, limit: Limit, allowed: int):
        super().__init__(f"{limit} limit of {allowed} reached")
        self.limit = limit
        self.allowed = allowed


async def count_send(store: Store, limits: Limits, client_id: int, now: datetime) -> None:
    """Count one tap on Send; raises LimitReached(RATE) past `sends_per_minute` (refused taps count too)."""
    async with store.tx() as tx:
        await tx.lock_client(client_id)
        count = await tx.count_send(client_id, now, SEND_WINDOW)
    if count > limits.sends_per_minute:
        raise LimitReached(Limit.RATE, limits.sends_per_minute)


async def check_requests(tx: Tx, limits: Limits, client_id: int, now: datetime, *, moving: int | None = None) -> None:
    """Raise LimitReached unless the client may make one more request now; `moving`: it replaces that visit's move.

    In the transaction that books, call tx.lock_client first: the counts then stay true until it commits.
    """
    if await tx.pending_requests(client_id, moving=moving) >= limits.pending_requests:
        raise LimitReached(Limit.PENDING, limits.pending_requests)
    if await tx.requests_since(client_id, now - DAY) >= limits.requests_per_day:
        raise LimitReached(Limit.DAY, limits.requests_per_day)


async def admit(store: Store, limits: Limits, client_id: int, now: datetime, *, moving: int | None = None) -> None:
    """Before any calendar work: count the Send and refuse at once a client who is over a limit already."""
    await count_send(store, limits, client_id, now)
    async with store.tx() as tx:
        await check_requests(tx, limits, client_id, now, moving=moving)


async def refund_send(store: Store, client_id: int) -> None:
    """Take back one counted Send: it failed for a reason that was not the client's doing."""
    async with store.tx() as tx:
        await tx.lock_client(client_id)
        await tx.uncount_send(client_id)
