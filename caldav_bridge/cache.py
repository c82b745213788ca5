"""Busy-time cache of one calendar: a time-range query first, then sync-collection (or ctag) deltas."""

from __future__ import annotations

import asyncio
import logging
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from caldav_bridge.busy import object_busy
from caldav_bridge.client import CALDAV, CS, DAV, NS, CalendarUnavailable, Connection, multistatus, text_of
from scheduling.model import Busy

log = logging.getLogger(__name__)

_XML = '<?xml version="1.0" encoding="utf-8"?>'
_XMLNS = f'xmlns:d="{DAV}" xmlns:c="{CALDAV}"'
MULTIGET_BATCH = 200


@dataclass(slots=True)
class Entry:
    etag: str | None
    text: str
    busy: list[Busy]
    # Kept from our own write, not yet shown by a read: proves nothing about what the server holds.
    local: bool = False


@dataclass(slots=True)
class CalendarCache:
    """What we know about one calendar within [start, end), and how to ask for what changed since."""

    url: str
    zone: ZoneInfo
    start: datetime | None = None
    end: datetime | None = None
    entries: dict[str, Entry] = field(default_factory=dict)
    sync_token: str | None = None
    ctag: str | None = None
    refreshed: float | None = None  # monotonic seconds of the last successful refresh
    reported: set[str] = field(default_factory=set)
    # Read with a plain time-range query and no sync state: right for its window when read, but no delta
    # can be asked against it; the next refresh reads everything (see `window_load`).
    partial: bool = False

    @property
    def loaded(self) -> bool:
        return self.refreshed is not None

    def covers(self, start: datetime, end: datetime) -> bool:
        return (
            self.loaded
            and self.start is not None
            and self.end is not None
            and (self.start <= start and end <= self.end)
        )

    def busy(self, start: datetime, end: datetime) -> list[Busy]:
        return [b for e in self.entries.values() for b in e.busy if b.overlaps(start, end)]

    def store(self, href: str, etag: str | None, text: str, *, local: bool = False) -> None:
        """Keep one object and its busy intervals for the cached window."""
        assert self.start is not None and self.end is not None
        key = href_key(href)
        busy = object_busy(key, text, self.start, self.end, self.zone, self.reported)
        self.entries[key] = Entry(etag, text, busy, local)

    async def store_many(self, objects: list[tuple[str, str | None, str]]) -> None:
        """Keep many (href, etag, text) objects; recurrences are expanded in a worker thread, off the event loop."""
        assert self.start is not None and self.end is not None
        start, end = self.start, self.end

        def expand() -> list[tuple[str, Entry]]:
            out = []
            for href, etag, text in objects:
                key = href_key(href)
                out.append((key, Entry(etag, text, object_busy(key, text, start, end, self.zone, self.reported))))
            return out

        if objects:
            self.entries.update(await asyncio.to_thread(expand))

    def drop(self, href: str) -> None:
        self.entries.pop(href_key(href), None)


def href_key(href: str) -> str:
    """Hrefs come back as paths or full URLs, quoted or not: compare them by decoded path."""
    return unquote(urlsplit(href).path)


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


async def _collection_state(conn: Connection, cache: CalendarCache) -> tuple[str | None, str | None]:
    resp = await conn.propfind(cache.url, "<d:sync-token/><cs:getctag/>")
    if resp.status != 207:
        raise CalendarUnavailable(f"{cache.url}: PROPFIND answered {resp.status}")
    rows = multistatus(resp)
    if not rows:
        return None, None
    props = rows[0][2]
    return text_of(props, f"{{{DAV}}}sync-token"), text_of(props, f"{{{CS}}}getctag")


async def full_load(conn: Connection, cache: CalendarCache, start: datetime, end: datetime) -> None:
    """Read every event overlapping [start, end) with a time-range query; expand recurrences here."""
    # The collection's sync token and ctag are read first: a change made between the two is then seen
    # again by the next delta rather than missed by it.
    token, ctag = await _collection_state(conn, cache)
    await _query(conn, cache, start, end)
    cache.sync_token, cache.ctag = token, ctag
    cache.partial = False


async def window_load(conn: Connection, cache: CalendarCache, start: datetime, end: datetime) -> None:
    """Read only [start, end) with one time-range query and no sync state: the first view of a calendar
    costs what a plain query of its window costs. The cache is marked partial; `full_load` completes it."""
    await _query(conn, cache, start, end)
    cache.sync_token = cache.ctag = None
    cache.partial = True


async def _query(conn: Connection, cache: CalendarCache, start: datetime, end: datetime) -> None:
    body = (
        f"{_XML}<c:calendar-query {_XMLNS}><d:prop><d:getetag/><c:calendar-data/></d:prop>"
        '<c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT">'
        f'<c:time-range start="{_stamp(start)}" end="{_stamp(end)}"/>'
        "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
    )
    resp = await conn.report(cache.url, body, depth=1)
    if resp.status != 207:
        raise CalendarUnavailable(f"{cache.url}: calendar-query answered {resp.status}")
    rows = multistatus(resp)
    fresh = CalendarCache(cache.url, cache.zone, start, end, reported=cache.reported)
    found = []
    for href, status, props in rows:
        data = text_of(props, f"{{{CALDAV}}}calendar-data")
        if status // 100 == 2 and data is not None:
            found.append((href, text_of(props, f"{{{DAV}}}getetag"), data))
    await fresh.store_many(found)
    cache.start, cache.end, cache.entries = start, end, fresh.entries
    cache.refreshed = _time.monotonic()


async def _multiget(conn: Connection, cache: CalendarCache, hrefs: list[str]) -> None:
    for i in range(0, len(hrefs), MULTIGET_BATCH):
        chunk = "".join(f"<d:href>{escape(h)}</d:href>" for h in hrefs[i : i + MULTIGET_BATCH])
        body = (
            f"{_XML}<c:calendar-multiget {_XMLNS}><d:prop><d:getetag/><c:calendar-data/></d:prop>"
            f"{chunk}</c:calendar-multiget>"
        )
        resp = await conn.report(cache.url, body, depth=1)
        if resp.status != 207:
            raise CalendarUnavailable(f"{cache.url}: calendar-multiget answered {resp.status}")
        found = []
        for href, status, props in multistatus(resp):
            data = text_of(props, f"{{{CALDAV}}}calendar-data")
            if status == 404:
                cache.drop(href)
            elif status // 100 == 2 and data is not None:
                found.append((href, text_of(props, f"{{{DAV}}}getetag"), data))
        await cache.store_many(found)


async def _sync(conn: Connection, cache: CalendarCache) -> bool:
    """Apply changes since the sync token; False when the token is no longer accepted."""
    body = (
        f"{_XML}<d:sync-collection {_XMLNS}><d:sync-token>{escape(cache.sync_token or '')}</d:sync-token>"
        "<d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
    )
    resp = await conn.report(cache.url, body, depth=None)
    if resp.status != 207:
        log.info("sync token of %s not accepted (%s); reading the window again", cache.url, resp.status)
        return False
    own = href_key(cache.url).rstrip("/")
    changed: list[str] = []
    token = resp.tree.findtext("d:sync-token", None, NS) if resp.tree is not None else None
    for href, status, props in multistatus(resp):
        key = href_key(href)
        if key.rstrip("/") == own:
            if status == 507:
                return False  # truncated answer: the delta is incomplete
            continue
        if status == 404:
            cache.drop(key)
            continue
        etag = text_of(props, f"{{{DAV}}}getetag")
        known = cache.entries.get(key)
        if known is None or etag is None or known.etag != etag:
            changed.append(key)
        else:
            # The server lists our own write with the etag its PUT answered: it holds exactly our text.
            known.local = False
    await _multiget(conn, cache, changed)
    cache.sync_token = token or cache.sync_token
    return True


async def refresh(conn: Connection, cache: CalendarCache) -> None:
    """Bring the cached window up to date with as few requests as the server allows."""
    assert cache.start is not None and cache.end is not None
    if cache.partial:
        await full_load(conn, cache, cache.start, cache.end)
        return
    if cache.sync_token and await _sync(conn, cache):
        cache.refreshed = _time.monotonic()
        return
    if not cache.sync_token:
        _, ctag = await _collection_state(conn, cache)
        if ctag is not None and ctag == cache.ctag:
            cache.refreshed = _time.monotonic()
            return
    await full_load(conn, cache, cache.start, cache.end)
