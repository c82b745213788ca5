"""The update slots: how many updates this process works on at once, and how a slow one steps out of them.

A Send tap waits for its specialist's turn (BookingService.turn), and a hundred of them for one specialist
must not fill the slots every other client's and specialist's update needs: while it waits for that turn it
does not count here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar


class _Slot:
    """One update's place among the slots; given back once, by whichever comes first."""

    def __init__(self, slots: asyncio.Semaphore):
        self._slots = slots
        self._held = False

    async def take(self) -> None:
        await self._slots.acquire()
        self._held = True

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


_CURRENT: ContextVar[_Slot | None] = ContextVar("update_slot", default=None)


class UpdateSlots:
    """At most `capacity` updates at work at once; updates that left their slot are not counted."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._slots = asyncio.Semaphore(capacity)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot while the update runs (in the update's own task: `leave_slot` finds it there)."""
        mine = _Slot(self._slots)
        await mine.take()
        token = _CURRENT.set(mine)
        try:
            yield
        finally:
            _CURRENT.reset(token)
            mine.give_back()


def leave_slot() -> None:
    """The update under way stops counting against the slots: it is about to wait under a limit of its own."""
    slot = _CURRENT.get()
    if slot is not None:
        slot.give_back()
