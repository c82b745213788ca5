"""The CalendarPort the booking service sees: each specialist's own calendar plus their busy feeds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime

from providers.feeds import BusyFeeds
from scheduling.calendar import CalendarPort, EventSpec
from scheduling.model import Busy
from scheduling.recurrence import SeenSeries


class CalendarRouter:
    """Sends each specialist's calendar work to the port that serves them (CalDAV by default)."""

    def __init__(
        self,
        default: CalendarPort,
        feeds: BusyFeeds,
        ports: Mapping[str, CalendarPort] | None = None,
        *,
        before: Callable[[str], Awaitable[None]] | None = None,
    ):
        self.default = default
        self.feeds = feeds
        self.ports = dict(ports or {})
        self.before = before  # attaches a calendar signed in elsewhere (another process, before a restart)

    async def _port(self, specialist_id: str) -> CalendarPort:
        if self.before is not None:
            await self.before(specialist_id)
        return self.ports.get(specialist_id, self.default)

    async def busy(self, specialist_id: str, start: datetime, end: datetime, *, fresh: bool = False) -> list[Busy]:
        """The calendar's busy time and the feeds' together; either one unreadable makes the answer unavailable."""
        port = await self._port(specialist_id)
        own, feeds = await asyncio.gather(
            port.busy(specialist_id, start, end, fresh=fresh),
            self.feeds.busy(specialist_id, start, end, fresh=fresh),
        )
        if not feeds:
            return own
        return sorted([*own, *feeds], key=lambda b: (b.start, b.end))

    async def appointment_times(
        self, specialist_id: str, uids: Collection[str]
    ) -> dict[str, tuple[datetime, datetime] | None]:
        return await (await self._port(specialist_id)).appointment_times(specialist_id, uids)

    async def series_state(self, specialist_id: str, uids: Collection[str]) -> dict[str, SeenSeries | None]:
        return await (await self._port(specialist_id)).series_state(specialist_id, uids)

    def booking_calendar_url(self, specialist_id: str) -> str:
        return self.ports.get(specialist_id, self.default).booking_calendar_url(specialist_id)

    async def put(self, specialist_id: str, event: EventSpec) -> str:
        return await (await self._port(specialist_id)).put(specialist_id, event)

    async def remove(self, specialist_id: str, uid: str, calendar_url: str | None = None) -> None:
        await (await self._port(specialist_id)).remove(specialist_id, uid, calendar_url)
