"""Microsoft 365 and Outlook.com through Microsoft Graph: the CalendarPort of those who sign in with Microsoft."""

from __future__ import annotations

import asyncio
import logging
import time as _time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import delete, select

from caldav_bridge.client import BearerSource
from providers.connections import Choice, RemoteCalendar
from providers.oauth import TIMEOUT, OAuthProvider
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.config import Practice, Specialist
from scheduling.db import RemoteEventRow
from scheduling.model import Busy
from scheduling.recurrence import SeenSeries
from scheduling.store import Store

log = logging.getLogger(__name__)

# Every time comes back in UTC, whatever zone the event was made in (Outlook uses Windows zone names).
PREFER = 'outlook.timezone="UTC", odata.maxpagesize=200'
MAX_RETRY_AFTER = 5.0  # seconds slept inline on a 429; longer waits go back to the outbox
FREE = "free"


def _utc(value: dict[str, str]) -> datetime:
    text = value["dateTime"].rstrip("Z")
    whole, _, fraction = text.partition(".")
    return datetime.fromisoformat(whole + ("." + fraction[:6] if fraction else "")).replace(tzinfo=UTC)


def _graph_time(dt: datetime) -> dict[str, str]:
    return {"dateTime": dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": "UTC"}


def event_busy(event: dict[str, Any], zone: ZoneInfo, uid: str | None) -> Busy | None:
    """The time one Graph event blocks: none when cancelled or shown as free; all-day events block the local day."""
    if event.get("isCancelled") or event.get("showAs") == FREE:
        return None
    start, end = _utc(event["start"]), _utc(event["end"])
    if event.get("isAllDay"):
        # All-day dates float: they are days where the specialist is, not UTC midnights.
        first: date = start.date()
        last: date = max(end.date(), first + timedelta(days=1))
        start = datetime.combine(first, time(), zone).astimezone(UTC)
        end = datetime.combine(last, time(), zone).astimezone(UTC)
    if end <= start:
        end = start + timedelta(minutes=1)
    return Busy(start, end, str(event.get("subject", "")), uid)


MAX_VISITS = 400


def visits(event: EventSpec) -> list[EventSpec]:
    """A weekly series as its single visits (rule steps in local wall time, so DST keeps the hour)."""
    rule = event.recurrence
    assert rule is not None
    zone = ZoneInfo(event.tzid)
    first, length = event.start.astimezone(zone), event.end - event.start
    skipped = {d.astimezone(UTC) for d in rule.exdates}
    moved = {o.recurrence_id.astimezone(UTC): o for o in rule.overrides}
    out: list[EventSpec] = []
    for k in range(rule.count or MAX_VISITS):
        start = (first + timedelta(weeks=k * rule.interval_weeks)).astimezone(UTC)
        if rule.until is not None and start > rule.until:
            break
        if start in skipped:
            continue
        key = f"{event.uid}#{start:%Y%m%dT%H%M%SZ}"
        o = moved.get(start)
        begin, end, status = (o.start, o.end, o.status) if o else (start, start + length, event.status)
        out.append(replace(event, uid=key, start=begin, end=end, status=status, recurrence=None))
    return out


@dataclass(slots=True)
class _Calendar:
    """What we know of one calendar within [start, end), and the delta link that says what changed since."""

    id: str
    start: datetime | None = None
    end: datetime | None = None
    delta_link: str | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    refreshed: float | None = None

    def covers(self, start: datetime, end: datetime) -> bool:
        return (
            self.refreshed is not None
            and self.start is not None
            and self.end is not None
            and (self.start <= start and end <= self.end)
        )


@dataclass(slots=True)
class _Specialist:
    tokens: BearerSource
    booking: _Calendar
    calendars: list[_Calendar]
    remote: dict[str, str]  # appointment uid -> Graph event id
    horizon_days: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class GraphGateway:
    """Reads busy time with calendarView delta queries and writes appointments as Graph events."""

    def __init__(
        self,
        practice: Practice,
        store: Store,
        provider: OAuthProvider,
        *,
        ttl: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.practice = practice
        self.store = store
        self.base = provider.api_url.rstrip("/")
        self.ttl = ttl
        self.clock = clock
        self.zone = ZoneInfo(practice.practice.timezone)
        self.requests = 0
        self._specs: dict[str, _Specialist] = {}
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- the sign-in's side ----------------------------------------------------------------------------

    async def list_calendars(self, provider: OAuthProvider, token: str) -> tuple[str, list[RemoteCalendar]]:
        """(account, calendars) of the signed-in user."""
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as http:
            async with http.get(f"{self.base}/me") as r:
                if r.status != 200:
                    raise CalendarUnavailable(f"microsoft graph /me answered {r.status}")
                me = await r.json(content_type=None)
            async with http.get(f"{self.base}/me/calendars") as r:
                if r.status != 200:
                    raise CalendarUnavailable(f"microsoft graph calendars answered {r.status}")
                found = (await r.json(content_type=None)).get("value", [])
        calendars = [RemoteCalendar(c["id"], c.get("name") or c["id"], bool(c.get("canEdit"))) for c in found]
        return str(me.get("mail") or me.get("userPrincipalName") or ""), calendars

    async def attach(self, spec: Specialist, choice: Choice, tokens: BearerSource) -> None:
        async with self.store.tx() as tx:
            rows = (
                await tx.session.scalars(select(RemoteEventRow).where(RemoteEventRow.specialist_id == spec.id))
            ).all()
        booking = _Calendar(choice.booking.id)
        calendars = [booking, *(_Calendar(c.id) for c in choice.busy)]
        remote = {r.uid: r.remote_id for r in rows if r.calendar_id == booking.id}
        self._specs[spec.id] = _Specialist(tokens, booking, calendars, remote, spec.horizon_days)

    def detach(self, specialist_id: str) -> None:
        self._specs.pop(specialist_id, None)

    def _spec(self, specialist_id: str) -> _Specialist:
        try:
            return self._specs[specialist_id]
        except KeyError:
            raise CalendarUnavailable(f"specialist {specialist_id}: Microsoft calendar not connected") from None

    # --- HTTP ------------------------------------------------------------------------------------------

    async def _call(
        self, spec: _Specialist, method: str, url: str, body: dict[str, Any] | None = None, *, prefer: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """One Graph request: bearer renewed once on 401, a short Retry-After slept once, 5xx unavailable."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        renewed = slept = False
        while True:
            headers = {"Authorization": f"Bearer {await spec.tokens.token(renew=renewed)}"}
            if prefer:
                headers["Prefer"] = PREFER
            self.requests += 1
            try:
                async with self._http.request(method, url, json=body, headers=headers) as r:
                    status, retry_after = r.status, r.headers.get("Retry-After")
                    data = await r.json(content_type=None) if r.content_length != 0 and status != 204 else {}
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise CalendarUnavailable(f"microsoft graph: {method} failed: {type(exc).__name__}") from None
            if status == 401 and not renewed:
                renewed = True
                continue
            short = retry_after is not None and retry_after.isdigit() and float(retry_after) <= MAX_RETRY_AFTER
            if status in (429, 503) and short and not slept:
                slept = True
                await asyncio.sleep(float(retry_after or 0))
                continue
            if status == 429 or status >= 500 or status == 401:
                raise CalendarUnavailable(f"microsoft graph: {method} answered {status}")
            return status, data or {}

    # --- busy time -------------------------------------------------------------------------------------

    def _window(self, spec: _Specialist, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        today = self.clock().astimezone(self.zone).date()
        lo = datetime.combine(today - timedelta(days=1), time(), self.zone).astimezone(UTC)
        hi = datetime.combine(today + timedelta(days=spec.horizon_days + 1), time(), self.zone).astimezone(UTC)
        return min(lo, start.astimezone(UTC)), max(hi, end.astimezone(UTC))

    async def _load(self, spec: _Specialist, cal: _Calendar, start: datetime, end: datetime) -> None:
        """Read the window afresh with a new delta query."""
        url = (
            f"{self.base}/me/calendars/{quote(cal.id, safe='')}/calendarView/delta"
            f"?startDateTime={start.isoformat(timespec='seconds')}&endDateTime={end.isoformat(timespec='seconds')}"
        ).replace("+00:00", "Z")
        events: dict[str, dict[str, Any]] = {}
        link = await self._follow(spec, url, events)
        if link is None:
            raise CalendarUnavailable(f"microsoft graph: the calendar view of {cal.id} expired while reading it")
        cal.start, cal.end, cal.events, cal.delta_link = start, end, events, link
        cal.refreshed = _time.monotonic()

    async def _follow(self, spec: _Specialist, url: str, events: dict[str, dict[str, Any]]) -> str | None:
        """Apply every page of a delta answer to `events`; the delta link, or None when the token expired (410)."""
        while True:
            status, page = await self._call(spec, "GET", url, prefer=True)
            if status == 410:
                return None
            if status != 200:
                raise CalendarUnavailable(f"microsoft graph: calendar view answered {status}")
            for item in page.get("value", []):
                if "@removed" in item:
                    events.pop(item["id"], None)
                else:
                    events[item["id"]] = item
            if next_link := page.get("@odata.nextLink"):
                url = next_link
                continue
            return page.get("@odata.deltaLink")

    async def _ensure(self, spec: _Specialist, cal: _Calendar, start: datetime, end: datetime, fresh: bool) -> None:
        if not cal.covers(start, end):
            lo, hi = self._window(spec, start, end)
            if cal.start is not None and cal.end is not None:
                lo, hi = min(lo, cal.start), max(hi, cal.end)
            await self._load(spec, cal, lo, hi)
        elif fresh or cal.refreshed is None or _time.monotonic() - cal.refreshed >= self.ttl:
            assert cal.delta_link is not None and cal.start is not None and cal.end is not None
            events = dict(cal.events)
            link = await self._follow(spec, cal.delta_link, events)
            if link is None:
                log.info("delta token of %s expired (410); reading its window again", cal.id)
                await self._load(spec, cal, cal.start, cal.end)
                return
            cal.events, cal.delta_link, cal.refreshed = events, link, _time.monotonic()

    async def busy(self, specialist_id: str, start: datetime, end: datetime, *, fresh: bool = False) -> list[Busy]:
        spec = self._spec(specialist_id)
        async with spec.lock:
            for cal in spec.calendars:
                await self._ensure(spec, cal, start, end, fresh)
            ours = {remote: uid for uid, remote in spec.remote.items()}
            out = [
                b
                for cal in spec.calendars
                for event_id, event in cal.events.items()
                if (b := event_busy(event, self.zone, ours.get(event_id))) is not None and b.overlaps(start, end)
            ]
        out.sort(key=lambda b: (b.start, b.end))
        return out

    async def appointment_times(
        self, specialist_id: str, uids: Collection[str]
    ) -> dict[str, tuple[datetime, datetime] | None]:
        """Our events' times after a fresh read; an event outside the window is looked up by its id."""
        spec = self._spec(specialist_id)
        now = self.clock()
        async with spec.lock:
            await self._ensure(spec, spec.booking, *self._window(spec, now, now), fresh=True)
            seen: dict[str, tuple[datetime, datetime] | None] = {}
            for uid in uids:
                remote = spec.remote.get(uid)
                if remote is None:
                    seen[uid] = None  # never written as far as we know: nothing to judge by
                    continue
                event = spec.booking.events.get(remote)
                if event is None:
                    status, event = await self._call(spec, "GET", f"{self.base}/me/events/{quote(remote, safe='')}")
                    if status == 404:
                        continue
                    if status != 200:
                        raise CalendarUnavailable(f"microsoft graph: reading an event answered {status}")
                if not event.get("isCancelled"):
                    seen[uid] = (_utc(event["start"]), _utc(event["end"]))
        return seen

    # --- writing ---------------------------------------------------------------------------------------

    def booking_calendar_url(self, specialist_id: str) -> str:
        """Where the specialist's appointments are written now (their booking calendar's Graph URL)."""
        spec = self._spec(specialist_id)
        return f"{self.base}/me/calendars/{quote(spec.booking.id, safe='')}"

    async def put(self, specialist_id: str, event: EventSpec) -> str:
        """Create (idempotently, by transaction id) or update the appointment's event; returns the calendar's URL."""
        spec = self._spec(specialist_id)
        if event.recurrence is None:
            await self._put_one(specialist_id, spec, event)
            return self.booking_calendar_url(specialist_id)
        wanted = {e.uid: e for e in visits(event)}
        for one in wanted.values():
            await self._put_one(specialist_id, spec, one)
        for key in [k for k in spec.remote if k.startswith(event.uid + "#") and k not in wanted]:
            await self._remove_one(spec, key)
        return self.booking_calendar_url(specialist_id)

    async def _put_one(self, specialist_id: str, spec: _Specialist, event: EventSpec) -> None:
        body: dict[str, Any] = {
            "subject": event.summary,
            "body": {"contentType": "text", "content": event.description},
            "start": _graph_time(event.start),
            "end": _graph_time(event.end),
            "location": {"displayName": event.location},
            "showAs": "tentative" if event.status == "TENTATIVE" else "busy",
            "isReminderOn": False,
        }
        remote = spec.remote.get(event.uid)
        if remote is not None:
            status, _ = await self._call(spec, "PATCH", f"{self.base}/me/events/{quote(remote, safe='')}", body)
            if status == 200:
                return
            if status != 404:
                raise CalendarUnavailable(f"microsoft graph: updating the event answered {status}")
            log.info("event of appointment %s was deleted in Outlook; writing it again", event.appointment_id)
        # A retried POST with the same transaction id gives back the first event, never a second one.
        body["transactionId"] = event.uid
        url = f"{self.base}/me/calendars/{quote(spec.booking.id, safe='')}/events"
        status, created = await self._call(spec, "POST", url, body)
        if status not in (200, 201) or "id" not in created:
            raise CalendarUnavailable(f"microsoft graph: creating the event answered {status}")
        await self._remember(specialist_id, spec, event.uid, created["id"])

    async def remove(self, specialist_id: str, uid: str, calendar_url: str | None = None) -> None:
        """Delete the appointment's event (a series' every visit); already gone, or never written, counts as done."""
        spec = self._spec(specialist_id)
        # Graph addresses events by id, whatever calendar holds them: a copy in an earlier calendar
        # (`calendar_url`) is the one `put` updates, so there is nothing else to remove.
        if calendar_url is not None and calendar_url != self.booking_calendar_url(specialist_id):
            return
        for key in [k for k in spec.remote if k == uid or k.startswith(uid + "#")]:
            await self._remove_one(spec, key)

    async def series_state(self, specialist_id: str, uids: Collection[str]) -> dict[str, SeenSeries | None]:
        """Series are written visit by visit here, so Outlook holds no series to read back: nothing to judge by."""
        self._spec(specialist_id)
        return dict.fromkeys(uids)

    async def _remove_one(self, spec: _Specialist, uid: str) -> None:
        remote = spec.remote.get(uid)
        if remote is None:
            return
        status, _ = await self._call(spec, "DELETE", f"{self.base}/me/events/{quote(remote, safe='')}")
        if status not in (200, 204, 404):
            raise CalendarUnavailable(f"microsoft graph: deleting the event answered {status}")
        spec.booking.events.pop(remote, None)
        spec.remote.pop(uid, None)
        async with self.store.tx() as tx:
            await tx.session.execute(delete(RemoteEventRow).where(RemoteEventRow.uid == uid))

    async def _remember(self, specialist_id: str, spec: _Specialist, uid: str, remote: str) -> None:
        spec.remote[uid] = remote
        async with self.store.tx() as tx:
            row = await tx.session.get(RemoteEventRow, uid)
            if row is None:
                tx.session.add(
                    RemoteEventRow(uid=uid, specialist_id=specialist_id, remote_id=remote, calendar_id=spec.booking.id)
                )
            else:
                row.remote_id, row.calendar_id = remote, spec.booking.id
