"""CalendarPort over CalDAV: cached busy times per specialist and conditional writes of appointments."""

from __future__ import annotations

import asyncio
import logging
import time as _time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

from caldav_bridge import cache as sync
from caldav_bridge.cache import CalendarCache, href_key
from caldav_bridge.client import (
    Account,
    CalDAVSetupError,
    CalendarInfo,
    Connection,
    account_for,
    discover,
    pick,
)
from caldav_bridge.ical import event_times, merge, series_seen, to_ical
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.config import Practice, Specialist
from scheduling.model import Busy
from scheduling.recurrence import SeenSeries

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 4
# A calendar unreachable at start is tried again after 1 s, then twice as long each time, at most a minute apart.
RECONNECT_FIRST = 1.0
RECONNECT_MAX = 60.0


class _HasCalendarUrl(Protocol):
    url: str
    username: str
    password: str
    calendar_url: str


@dataclass(slots=True)
class _State:
    conn: Connection
    booking: CalendarCache
    calendars: list[CalendarCache]
    horizon_days: int
    # One request at a time per calendar: concurrent readers share the one under way (calendar url -> task).
    inflight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # Background reads of the rest of the horizon after a first view read only its window (url -> task).
    fills: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def stop_fills(self) -> None:
        for task in self.fills.values():
            task.cancel()
        self.fills.clear()


def _resolve(spec: Specialist, supplied: Account | _HasCalendarUrl | None) -> Account:
    if supplied is None:
        if not spec.caldav.url:
            raise CalDAVSetupError(f"specialist {spec.id}: no caldav.url and no embedded calendar account was supplied")
        return account_for(spec)
    if isinstance(supplied, Account):
        return supplied
    return Account(
        supplied.url,
        supplied.username,
        supplied.password,
        supplied.calendar_url,
        tuple(spec.caldav.busy_calendars),
    )


class CalDAVGateway:
    """Implements scheduling.calendar.CalendarPort for every specialist of the practice."""

    def __init__(
        self,
        practice: Practice,
        *,
        timeout: float = 10.0,
        ttl: float = 60.0,
        stale_wait: float = 0.5,
        accounts: Mapping[str, Account | _HasCalendarUrl] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fill_delay: float = 0.5,
    ) -> None:
        self.practice = practice
        self.timeout = timeout
        self.ttl = ttl
        self.stale_wait = stale_wait
        self.accounts = dict(accounts or {})
        self.clock = clock
        # The rest of a calendar is read this long after its first view: that view's answer goes out first.
        self.fill_delay = fill_delay
        self.zone = ZoneInfo(practice.practice.timezone)
        self._states: dict[str, _State] = {}
        self._closed_requests = 0
        # Specialists whose calendar could not be reached: since when, while a task keeps trying again.
        self.unavailable: dict[str, datetime] = {}
        self._reconnects: dict[str, asyncio.Task[None]] = {}
        # Told when an unreachable specialist is connected again (their queued writes can go now).
        self.on_connected: Callable[[str], Awaitable[None]] | None = None

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, over all specialists."""
        return self._closed_requests + sum(s.conn.requests for s in self._states.values())

    async def start(self) -> None:
        """Connect every CalDAV and embedded specialist side by side; raises CalDAVSetupError naming a setup mistake."""
        # A server that does not answer (refused, timed out, 5xx) stops nobody: that specialist is unavailable
        # (their calendar reads as unavailable, so no time of theirs is offered) and is connected again in the
        # background, with backoff. Google specialists are attached later (`attach`), once their tokens are known.
        specs = [s for s in self.practice.specialists if s.calendar_kind in ("caldav", "embedded")]
        results = await asyncio.gather(*(self._connect(spec) for spec in specs), return_exceptions=True)
        failed: BaseException | None = None
        for spec, res in zip(specs, results, strict=True):
            if isinstance(res, _State):
                self._states[spec.id] = res
            elif isinstance(res, CalendarUnavailable) and not isinstance(res, CalDAVSetupError):
                self._unreachable(spec, res)
            elif failed is None:
                failed = res
        if failed is not None:
            await self.close()
            raise failed

    def _unreachable(self, spec: Specialist, exc: CalendarUnavailable) -> None:
        """Mark a specialist unavailable and keep trying to connect them until their server answers."""
        self.unavailable[spec.id] = self.clock()
        log.warning(
            "calendar of specialist %s unreachable at start (%s); their times are not offered until it answers, "
            "trying again in the background",
            spec.id,
            exc,
        )
        self._reconnects[spec.id] = asyncio.get_running_loop().create_task(
            self._reconnect(spec), name=f"reconnect-{spec.id}"
        )

    async def _reconnect(self, spec: Specialist) -> None:
        delay = RECONNECT_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                state = await self._connect(spec)
            except Exception as exc:  # whatever the server does, the next try may succeed
                delay = min(delay * 2, RECONNECT_MAX)
                log.info("calendar of specialist %s still unreachable (%s); next try in %g s", spec.id, exc, delay)
                continue
            self._states[spec.id] = state
            self.unavailable.pop(spec.id, None)
            self._reconnects.pop(spec.id, None)
            log.warning("calendar of specialist %s connected again; their times are offered", spec.id)
            if self.on_connected is not None:
                try:
                    await self.on_connected(spec.id)
                except Exception:
                    log.exception("after connecting %s again", spec.id)
            return

    async def _connect(self, spec: Specialist) -> _State:
        return await self._connect_account(spec, _resolve(spec, self.accounts.get(spec.id)))

    async def _connect_account(self, spec: Specialist, account: Account) -> _State:
        conn = Connection(account.url, account.username, account.password, timeout=self.timeout, bearer=account.bearer)
        try:
            if account.bearer is not None:
                # Signed-in calendars were chosen from the provider's own list: their URLs are known, and
                # Google's CalDAV home lists only the one calendar it belongs to.
                found = [CalendarInfo(u, u) for u in (account.booking_calendar, *account.busy_calendars)]
            else:
                found = await discover(conn)
            where = f"specialist {spec.id} at {account.url}"
            booking = pick(found, account.booking_calendar, where)
            chosen: dict[str, CalendarInfo] = {booking.url: booking}
            for name in account.busy_calendars:
                cal = pick(found, name, where)
                chosen.setdefault(cal.url, cal)
        except BaseException:
            await conn.close()
            raise
        caches = {url: CalendarCache(url, self.zone) for url in chosen}
        return _State(conn, caches[booking.url], list(caches.values()), spec.horizon_days)

    async def attach(self, spec: Specialist, account: Account) -> None:
        """Connect one specialist now (a calendar signed in after start); replaces an earlier connection."""
        state = await self._connect_account(spec, account)
        self._stop_reconnecting(spec.id)
        old = self._states.pop(spec.id, None)
        self._states[spec.id] = state
        if old is not None:
            old.stop_fills()
            self._closed_requests += old.conn.requests
            await old.conn.close()

    def detach(self, specialist_id: str) -> None:
        """Forget a specialist's connection (their sign-in was revoked); their calendar reads as unavailable."""
        state = self._states.pop(specialist_id, None)
        if state is not None:
            state.stop_fills()
            self._closed_requests += state.conn.requests
            asyncio.get_running_loop().create_task(state.conn.close())

    def _stop_reconnecting(self, specialist_id: str) -> None:
        self.unavailable.pop(specialist_id, None)
        task = self._reconnects.pop(specialist_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._reconnects.values())
        for spec_id in list(self._reconnects):
            self._stop_reconnecting(spec_id)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for s in self._states.values():
            s.stop_fills()
        for s in self._states.values():
            self._closed_requests += s.conn.requests
            await s.conn.close()
        self._states.clear()

    def booking_calendar_url(self, specialist_id: str) -> str:
        return self._state(specialist_id).booking.url

    def _state(self, specialist_id: str) -> _State:
        try:
            return self._states[specialist_id]
        except KeyError:
            raise CalendarUnavailable(f"specialist {specialist_id}: calendar not connected") from None

    def _yesterday(self) -> datetime:
        today = self.clock().astimezone(self.zone).date()
        return datetime.combine(today - timedelta(days=1), time(), self.zone).astimezone(UTC)

    def _window(self, st: _State, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """What to load: yesterday to the horizon, widened to the range asked for, never before yesterday."""
        lo = self._yesterday()
        today = self.clock().astimezone(self.zone).date()
        hi = datetime.combine(today + timedelta(days=st.horizon_days + 1), time(), self.zone).astimezone(UTC)
        return lo, max(hi, end.astimezone(UTC))

    def _stale(self, cal: CalendarCache) -> bool:
        return cal.refreshed is None or _time.monotonic() - cal.refreshed >= self.ttl

    async def _update(self, st: _State, cal: CalendarCache, start: datetime, end: datetime) -> None:
        """Load the window if the cache does not cover [start, end), else bring it up to date."""
        # A calendar never read before answers its first view from one time-range query of that view alone
        # (what a plain re-fetch costs); the rest of the horizon, and the sync state that makes later reads
        # cheap, follow in the background (`_fill`).
        lo, hi = self._window(st, start, end)
        if cal.start is None and (start > lo or end < hi):
            await sync.window_load(st.conn, cal, start, end)
            self._schedule_fill(st, cal)
        elif not cal.covers(start, end) or cal.partial:
            if cal.end is not None:
                hi = max(hi, cal.end)  # grows forward with what is asked; the start stays at yesterday
            await sync.full_load(st.conn, cal, lo, hi)
        else:
            await sync.refresh(st.conn, cal)

    def _schedule_fill(self, st: _State, cal: CalendarCache) -> None:
        if cal.url in st.fills:
            return
        task = asyncio.get_running_loop().create_task(self._fill(st, cal))
        st.fills[cal.url] = task

        def done(t: asyncio.Task[None]) -> None:
            if st.fills.get(cal.url) is t:
                del st.fills[cal.url]

        task.add_done_callback(done)

    async def _fill(self, st: _State, cal: CalendarCache) -> None:
        """Read the whole horizon with its sync state, unless a reader has done it meanwhile."""
        await asyncio.sleep(self.fill_delay)
        now = self.clock()
        lo, hi = self._window(st, now, now)
        try:
            for _ in range(3):
                if not cal.partial and cal.covers(lo, hi):
                    return
                await asyncio.shield(self._shared(st, cal, lo, hi))
        except Exception as exc:
            # Nobody waits for this read: the cache stays partial, and the next read of it reads the whole
            # horizon itself (and meets the same error, if it lasts).
            log.info("reading the rest of %s failed: %s: %s", cal.url, type(exc).__name__, exc)

    async def settled(self) -> None:
        """Wait for the background reads under way (benchmarks and tests)."""
        while tasks := [t for st in self._states.values() for t in st.fills.values()]:
            await asyncio.wait(tasks)

    def _shared(self, st: _State, cal: CalendarCache, start: datetime, end: datetime) -> asyncio.Task[None]:
        """The request under way for this calendar, or a new one: readers never send the same request twice."""
        task = st.inflight.get(cal.url)
        # A finished read stays listed until its done callback runs: a reader woken before that starts anew.
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._update(st, cal, start, end))
            st.inflight[cal.url] = task

            def done(t: asyncio.Task[None]) -> None:
                if st.inflight.get(cal.url) is t:
                    del st.inflight[cal.url]
                if not t.cancelled():
                    t.exception()  # retrieved here: every reader may have stopped waiting

            task.add_done_callback(done)
        return task

    async def _ensure(self, st: _State, cal: CalendarCache, start: datetime, end: datetime, fresh: bool) -> None:
        """Make the cache answer [start, end): fresh asks the server (sharing only a request that started after
        it asked); otherwise a covered cache answers at once and a stale one is refreshed in the background."""
        for _ in range(3):
            if cal.covers(start, end) and not fresh:
                if self._stale(cal):
                    # Stale while revalidating: browsing waits a moment for the refresh, never for a slow server.
                    task = self._shared(st, cal, start, end)
                    await asyncio.wait([task], timeout=self.stale_wait)
                    if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                        raise exc
                return
            if fresh and (earlier := st.inflight.get(cal.url)) is not None:
                # A read already under way may have left before a change made just now: wait it out, read anew.
                await asyncio.wait([earlier])
            task = self._shared(st, cal, start, end)
            # Shielded: a reader that gives up (a time limit) does not cancel the others' request.
            await asyncio.shield(task)
            if cal.covers(start, end):
                return
        raise CalendarUnavailable(f"{cal.url}: the calendar could not be read for the range asked")

    async def busy(self, specialist_id: str, start: datetime, end: datetime, *, fresh: bool = False) -> list[Busy]:
        """Busy intervals of all the specialist's busy calendars in [start, end), in aware UTC."""
        # Nothing before yesterday is read or kept: past time cannot be booked.
        st = self._state(specialist_id)
        start = max(start.astimezone(UTC), self._yesterday())
        if end <= start:
            return []
        results = await asyncio.gather(
            *(self._ensure(st, cal, start, end, fresh) for cal in st.calendars), return_exceptions=True
        )
        for cal, res in zip(st.calendars, results, strict=True):
            if isinstance(res, BaseException):
                if isinstance(res, asyncio.CancelledError):
                    raise res
                if not isinstance(res, CalendarUnavailable):
                    res = CalendarUnavailable(f"{cal.url}: {type(res).__name__}: {res}")
                if fresh or not cal.covers(start, end):
                    raise res
                log.warning("calendar %s unreachable, answering from cache: %s", cal.url, res)
        out = [b for cal in st.calendars for b in cal.busy(start, end)]
        out.sort(key=lambda b: (b.start, b.end))
        return out

    async def appointment_times(
        self, specialist_id: str, uids: Collection[str]
    ) -> dict[str, tuple[datetime, datetime] | None]:
        """Our events' times after a fresh read; one GET confirms each event that seems gone (it may have been
        moved outside the cached window)."""
        st = self._state(specialist_id)
        wanted = set(uids)
        lo, hi = self._window(st, self.clock(), self.clock())
        await self._ensure(st, st.booking, lo, hi, fresh=True)
        # Our own writes count only once a read has shown them: a server may answer 201 and lose the event.
        objects = [(key, entry.text) for key, entry in st.booking.entries.items() if not entry.local]
        seen: dict[str, tuple[datetime, datetime] | None] = {}
        cancelled: set[str] = set()

        def note(resource_uid: str, text: str) -> None:
            try:
                uid, start, end, is_cancelled = event_times(text)
            except Exception:
                # Unreadable: only our own resource name (<uid>.ics) tells whose it is; present, time unknown.
                if resource_uid in wanted:
                    seen[resource_uid] = None
                return
            if uid in wanted:
                if is_cancelled:
                    cancelled.add(uid)
                else:
                    seen[uid] = (start, end)

        for key, text in objects:
            note(unquote(key.rsplit("/", 1)[-1]).removesuffix(".ics"), text)
        for uid in wanted - seen.keys() - cancelled:
            r = await st.conn.request("GET", self._event_url(st, uid))
            if r.status == 200:
                note(uid, r.body.decode("utf-8", "replace"))
            elif r.status != 404:
                raise CalendarUnavailable(f"{st.booking.url}: reading an event answered {r.status}")
        return seen

    async def series_state(self, specialist_id: str, uids: Collection[str]) -> dict[str, SeenSeries | None]:
        """Our recurring events after a fresh read, expanded; a resource not in the window is fetched by name."""
        st = self._state(specialist_id)
        lo, hi = self._window(st, self.clock(), self.clock())
        await self._ensure(st, st.booking, lo, hi, fresh=True)
        texts = {
            uid: entry.text
            for uid in uids
            if (entry := st.booking.entries.get(href_key(self._event_url(st, uid)))) and not entry.local
        }
        out: dict[str, SeenSeries | None] = {}
        for uid in uids:
            text = texts.get(uid)
            if text is None:
                r = await st.conn.request("GET", self._event_url(st, uid))
                if r.status == 404:
                    continue
                if r.status != 200:
                    raise CalendarUnavailable(f"{st.booking.url}: reading an event answered {r.status}")
                text = r.body.decode("utf-8", "replace")
            try:
                out[uid] = series_seen(text, self.zone)
            except Exception:
                out[uid] = None
        return out

    def _event_url(self, st: _State, uid: str) -> str:
        return st.booking.url + quote(uid, safe="@-_.") + ".ics"

    def _remember(self, st: _State, url: str, etag: str | None, text: str) -> None:
        if st.booking.start is not None:
            st.booking.store(url, etag, text, local=True)

    async def put(self, specialist_id: str, event: EventSpec) -> str:
        """Create (If-None-Match: *) or update (If-Match, our fields win) `<uid>.ics`; returns the calendar's URL."""
        # An update is first merged into the copy the cache holds and sent with its etag: one request when
        # nobody changed the event since; a 412 (they did) reads it again.
        st = self._state(specialist_id)
        url = self._event_url(st, event.uid)
        conn = st.conn
        known = st.booking.entries.get(href_key(url))
        # An event we have not seen is new, unless it was written before (its SEQUENCE went up since): then
        # another process wrote it, and a GET first saves the create that would be refused.
        create = known is None and event.sequence == 0
        current: str | bytes
        for _ in range(WRITE_ATTEMPTS):
            if create:
                body = to_ical(event)
                r = await conn.request("PUT", url, body, _ical_headers({"If-None-Match": "*"}))
                if r.status in (200, 201, 204):
                    self._remember(st, url, r.etag, body)
                    return st.booking.url
                if r.status != 412:
                    raise CalendarUnavailable(f"{url}: creating the event answered {r.status}")
            if known is not None and known.etag:
                # The If-Match below makes a stale copy harmless: the server refuses it with 412.
                current, etag, known = known.text, known.etag, None
            else:
                got = await conn.request("GET", url)
                if got.status == 404:
                    create = True
                    continue
                if got.status != 200 or not got.etag:
                    raise CalendarUnavailable(f"{url}: reading the event answered {got.status}")
                current, etag = got.body, got.etag
            try:
                body = merge(current if isinstance(current, str) else current.decode("utf-8"), event)
            except Exception:
                log.warning("event %s on the server does not parse; writing ours over it", url)
                body = to_ical(event)
            r = await conn.request("PUT", url, body, _ical_headers({"If-Match": etag}))
            if r.status in (200, 201, 204):
                self._remember(st, url, r.etag, body)
                return st.booking.url
            if r.status != 412:
                raise CalendarUnavailable(f"{url}: updating the event answered {r.status}")
            create = False
            log.info("event %s changed under us; reading it again", url)
        raise CalendarUnavailable(f"{url}: the event kept changing while we wrote it")

    async def remove(self, specialist_id: str, uid: str, calendar_url: str | None = None) -> None:
        """Delete `<uid>.ics` with If-Match from `calendar_url` (default the booking calendar); gone counts as done."""
        # `calendar_url` is another calendar of the same account the event was written to before: the booking
        # calendar changed in the configuration.
        st = self._state(specialist_id)
        if calendar_url is not None and calendar_url != st.booking.url:
            if urlsplit(calendar_url).netloc != urlsplit(st.conn.url).netloc:
                # Another server: our credentials are not sent there.
                raise CalendarUnavailable(f"{calendar_url}: not on this account's server")
            url = calendar_url + quote(uid, safe="@-_.") + ".ics"
        else:
            url = self._event_url(st, uid)
        known = st.booking.entries.get(href_key(url))
        etag = known.etag if known else None
        for _ in range(WRITE_ATTEMPTS):
            if etag is None:
                got = await st.conn.request("GET", url)
                if got.status == 404:
                    st.booking.drop(url)
                    return
                if got.status != 200 or not got.etag:
                    raise CalendarUnavailable(f"{url}: reading the event answered {got.status}")
                etag = got.etag
            r = await st.conn.request("DELETE", url, "", {"If-Match": etag})
            if r.status in (200, 204, 404):
                st.booking.drop(url)
                return
            if r.status != 412:
                raise CalendarUnavailable(f"{url}: deleting the event answered {r.status}")
            etag = None
        raise CalendarUnavailable(f"{url}: the event kept changing while we deleted it")


def _ical_headers(extra: dict[str, Any]) -> dict[str, str]:
    return {"Content-Type": "text/calendar; charset=utf-8", **extra}
