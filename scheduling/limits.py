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


async def check_requests(tx: Tx, limits: Limits, client_id: int, now: datetime, *, moving: int | None = None) -> None:
    """Raise LimitReached unless the client may make one more request now; `moving`: it replaces that visit's move.

    In the transaction that books, call tx.lock_client first: the counts then stay true until it commits.
    """
    pending, today = await tx.limit_counts(client_id, now - DAY, moving=moving)
    if pending >= limits.pending_requests:
        raise LimitReached(Limit.PENDING, limits.pending_requests)
    if today >= limits.requests_per_day:
        raise LimitReached(Limit.DAY, limits.requests_per_day)


async def admit_in(
    tx: Tx, limits: Limits, client_id: int, now: datetime, *, moving: int | None = None
) -> LimitReached | None:
    """Before any calendar work, in the caller's transaction: count the Send under the client's lock, and say
    whether a limit refuses it already.

    The refusal is returned, not raised: the transaction must commit the counted Send (refused taps count too).
    """
    await tx.lock_client(client_id)
    if await tx.count_send(client_id, now, SEND_WINDOW) > limits.sends_per_minute:
        return LimitReached(Limit.RATE, limits.sends_per_minute)
    try:
        await check_requests(tx, limits, client_id, now, moving=moving)
    except LimitReached as exc:
        return exc
    return None


async def admit(store: Store, limits: Limits, client_id: int, now: datetime, *, moving: int | None = None) -> None:
    """admit_in in a transaction of its own; raises LimitReached for a client who is over a limit already."""
    async with store.tx() as tx:
        refused = await admit_in(tx, limits, client_id, now, moving=moving)
    if refused is not None:
        raise refused
