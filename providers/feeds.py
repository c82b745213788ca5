"""Busy time from published iCalendar feeds: Google's secret iCal address, Outlook's published calendar, ..."""

from __future__ import annotations

import asyncio
import logging
import os
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
from icalendar import Calendar

from caldav_bridge.busy import object_busy
from scheduling.calendar import CalendarUnavailable
from scheduling.config import BusyFeed, Practice
from scheduling.model import Busy

log = logging.getLogger(__name__)

# At a booking's commit a feed older than this is read again (conditionally, so usually a 304).
FRESH_AT_COMMIT = 60.0
FIRST_RETRY = 30.0
MAX_BACKOFF = 3600.0
MAX_FEED_BYTES = 20 * 1024 * 1024


def feed_address(feed: BusyFeed) -> str:
    """The feed's URL, from the file or the environment; empty when the variable is not set."""
    return feed.url or os.environ.get(feed.url_env, "").strip()


def feed_label(feed: BusyFeed) -> str:
    """How a feed is named in logs and health: never the secret part of its address."""
    if feed.url_env:
        return f"${feed.url_env}"
    parts = urlsplit(feed.url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def split_objects(text: str) -> Iterator[tuple[str, str]]:
    """(uid, text) of one calendar object per UID, each with the feed's time zones: what a CalDAV server holds."""
    cal = Calendar.from_ical(text)
    zones = [c for c in cal.subcomponents if c.name == "VTIMEZONE"]
    groups: dict[str, list[object]] = {}
    for i, comp in enumerate(cal.subcomponents):
        if comp.name == "VEVENT":
            groups.setdefault(str(comp.get("UID", "")) or f"#{i}", []).append(comp)
    for uid, comps in groups.items():
        one = Calendar()
        one.add("VERSION", "2.0")
        one.add("PRODID", "-//bookingbot//busy feed//EN")
        for comp in [*zones, *comps]:
            one.add_component(comp)
        yield uid, one.to_ical().decode("utf-8")


def feed_busy(label: str, text: str, start: datetime, end: datetime, zone: ZoneInfo, reported: set[str]) -> list[Busy]:
    """Busy intervals of a whole feed in [start, end), read object by object like a CalDAV calendar."""
    out = [
        b for uid, obj in split_objects(text) for b in object_busy(f"{label}#{uid}", obj, start, end, zone, reported)
    ]
    out.sort(key=lambda b: (b.start, b.end))
    return out


@dataclass(slots=True)
class FeedState:
    """What we hold of one feed: the last good copy and how reading it goes."""

    feed: BusyFeed
    text: str | None = None
    busy: list[Busy] | None = None  # None until the feed was read once
    start: datetime | None = None
    end: datetime | None = None
    etag: str | None = None
    last_modified: str | None = None
    checked: float | None = None  # monotonic time of the last successful fetch (200 or 304)
    loaded_at: datetime | None = None
    failures: int = 0
    retry_at: float = 0.0
    error: str | None = None
    parses: int = 0
    reported: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def label(self) -> str:
        return feed_label(self.feed)


class BusyFeeds:
    """Reads every specialist's busy feeds on an interval, keeps the last good copy, and answers busy time."""

    def __init__(
        self,
        practice: Practice,
        *,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.practice = practice
        self.interval = practice.practice.busy_feed_minutes * 60
        self.timeout = timeout
        self.clock = clock
        self.zone = ZoneInfo(practice.practice.timezone)
        self.feeds: dict[str, list[FeedState]] = {
            s.id: [FeedState(f) for f in s.busy_feeds] for s in practice.specialists if s.busy_feeds
        }
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def _window(self, specialist_id: str) -> tuple[datetime, datetime]:
        """Yesterday to the end of the booking horizon, where the slot engine looks."""
        today = self.clock().astimezone(self.zone).date()
        horizon = self.practice.specialist_by_id[specialist_id].horizon_days
        lo = datetime.combine(today - timedelta(days=1), time(), self.zone)
        hi = datetime.combine(today + timedelta(days=horizon + 2), time(), self.zone)
        return lo.astimezone(UTC), hi.astimezone(UTC)

    async def busy(self, specialist_id: str, start: datetime, end: datetime, *, fresh: bool = False) -> list[Busy]:
        """Busy intervals of the specialist's feeds in [start, end); CalendarUnavailable while one was never read."""
        states = self.feeds.get(specialist_id, [])
        if not states:
            return []
        await asyncio.gather(*(self._ensure(specialist_id, s, fresh) for s in states))
        out: list[Busy] = []
        for state in states:
            if state.busy is None or state.text is None:
                raise CalendarUnavailable(f"busy feed {state.label} of {specialist_id} was never read: {state.error}")
            if state.start is not None and state.end is not None and state.start <= start and end <= state.end:
                out.extend(b for b in state.busy if b.overlaps(start, end))
            else:
                # Outside the window read ahead: expand the last copy for exactly this range.
                out.extend(
                    await asyncio.to_thread(feed_busy, state.label, state.text, start, end, self.zone, state.reported)
                )
        out.sort(key=lambda b: (b.start, b.end))
        return out

    async def _ensure(self, specialist_id: str, state: FeedState, fresh: bool) -> None:
        now = _time.monotonic()
        age = None if state.checked is None else now - state.checked
        due = age is None or age >= (FRESH_AT_COMMIT if fresh else self.interval)
        if not due or now < state.retry_at:
            return
        async with state.lock:
            if state.checked is not None and state.checked > now:
                return  # another caller read it while we waited
            await self.load(specialist_id, state)

    async def refresh_due(self) -> None:
        """Read every feed whose interval has passed (the background loop calls this)."""
        now = _time.monotonic()
        jobs = [
            self.load(spec_id, s)
            for spec_id, states in self.feeds.items()
            for s in states
            if now >= s.retry_at and (s.checked is None or now - s.checked >= self.interval)
        ]
        await asyncio.gather(*jobs)

    async def run_forever(self, tick: float = 15.0) -> None:
        """Keep every feed fresh until cancelled."""
        while True:
            try:
                await self.refresh_due()
            except Exception:
                log.exception("busy feed refresh failed")
            await asyncio.sleep(tick)

    async def load(self, specialist_id: str, state: FeedState) -> None:
        """Fetch one feed conditionally; on any failure keep the last good copy and back off."""
        address = feed_address(state.feed)
        try:
            if not address:
                raise CalendarUnavailable(f"environment variable {state.feed.url_env} is not set")
            headers = {"Accept": "text/calendar"}
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
            async with self._http().get(address, headers=headers) as r:
                if r.status == 304 and state.text is not None:
                    body = None
                elif r.status == 200:
                    body = await r.content.read(MAX_FEED_BYTES + 1)
                    if len(body) > MAX_FEED_BYTES:
                        raise CalendarUnavailable(f"larger than {MAX_FEED_BYTES // 1024 // 1024} MB")
                else:
                    raise CalendarUnavailable(f"answered {r.status}")
                etag, modified = r.headers.get("ETag"), r.headers.get("Last-Modified")
            lo, hi = self._window(specialist_id)
            if body is not None:
                text = body.decode("utf-8", "replace")
                busy = await asyncio.to_thread(feed_busy, state.label, text, lo, hi, self.zone, state.reported)
                state.text, state.busy, state.parses = text, busy, state.parses + 1
                state.start, state.end = lo, hi
                state.loaded_at = self.clock()
            elif state.start != lo and state.text is not None:
                # Unchanged, but the days moved on: widen what was read to the new window.
                state.busy = await asyncio.to_thread(
                    feed_busy, state.label, state.text, lo, hi, self.zone, state.reported
                )
                state.start, state.end = lo, hi
            state.etag, state.last_modified = etag or state.etag, modified or state.last_modified
            state.checked, state.failures, state.retry_at, state.error = _time.monotonic(), 0, 0.0, None
        except Exception as exc:
            reason = str(exc) if isinstance(exc, CalendarUnavailable) else type(exc).__name__
            state.failures += 1
            state.error = reason
            state.retry_at = _time.monotonic() + min(FIRST_RETRY * 2 ** (state.failures - 1), MAX_BACKOFF)
            kept = "keeping the last copy" if state.busy is not None else "no copy yet: its days stay closed"
            log.warning("busy feed %s of %s failed (%s); %s", state.label, specialist_id, reason, kept)

    def status(self) -> dict[str, list[dict[str, str]]]:
        """Per specialist, each feed's state for /healthz and `check`: ok, stale (last copy kept) or never read."""
        out: dict[str, list[dict[str, str]]] = {}
        for spec_id, states in self.feeds.items():
            rows = []
            for s in states:
                state = "never read" if s.busy is None else ("stale" if s.error else "ok")
                row = {"feed": s.label, "state": state}
                if s.loaded_at is not None:
                    row["last_read"] = s.loaded_at.isoformat(timespec="seconds")
                if s.error:
                    row["error"] = s.error
                rows.append(row)
            out[spec_id] = rows
        return out
