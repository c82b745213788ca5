"""The bot's HTTP side: health check, Telegram webhook, and a read-only ICS feed per specialist."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from icalendar import Calendar
from telegram import Update
from telegram.ext import Application

from bot import webhook_reply
from bot.calendar_text import event_for, group_event_for
from bot.handlers.connect import finish_sign_in
from bot.i18n import gettext_for
from bot.runtime import Runtime
from bot.settings import MIN_SECRET_CHARS, Settings
from bot.telegram_bot import drop_tapped_keyboard
from caldav_bridge.ical import PRODID, ics_bytes
from providers.oauth import SignInFailed, code_from_address
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.config import Practice
from scheduling.db import private_dir
from scheduling.privacy import feed_detail
from scheduling.store import Store

log = logging.getLogger(__name__)

FEED_KEY_FILE = "feed.key"
FEED_TOKEN_CHARS = 32
FEED_PAST = timedelta(days=30)
# Telegram updates are a few kilobytes; anything near this is not from Telegram.
MAX_BODY = 1024 * 1024
HEALTH_TIMEOUT = 5.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

RUNTIME_KEY: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
TELEGRAM_KEY: web.AppKey[Application] = web.AppKey("telegram", Application)
FEED_KEY: web.AppKey[bytes] = web.AppKey("feed_key", bytes)
HEALTH_TOKEN_KEY: web.AppKey[str] = web.AppKey("health_token", str)

_FEED_PATH = re.compile(r"^(/feeds/[^/]+/)[^/]+\.ics")


def feed_key(data_dir: Path) -> bytes:
    """The random key behind every feed token: created once in `<data_dir>/feed.key` (mode 0600)."""
    path = private_dir(Path(data_dir)) / FEED_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ValueError(f"{path}: not a valid feed key; delete it to make a new one") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def feed_token(key: bytes, specialist_id: str, generation: int = 0) -> str:
    """The unguessable part of one specialist's feed URL; `bookingbot feed rotate` moves it to the next generation."""
    # Generation 0 is the address every feed had before rotation existed: it keeps working until renewed.
    message = specialist_id if generation == 0 else f"{specialist_id}\n{generation}"
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()[:FEED_TOKEN_CHARS]


def public_base(settings: Settings) -> str:
    """Where the bot's web endpoints are reached: the public URL, the webhook URL's origin, or the listen address."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if settings.webhook_url:
        parts = urlsplit(settings.webhook_url)
        return f"{parts.scheme}://{parts.netloc}"
    host, port = settings.listen_host_port
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def feed_url(settings: Settings, key: bytes, specialist_id: str, base: str | None = None, generation: int = 0) -> str:
    """The read-only ICS feed URL of one specialist, for calendar apps that only subscribe (Outlook)."""
    root = (base or public_base(settings)).rstrip("/")
    return f"{root}/feeds/{quote(specialist_id, safe='')}/{feed_token(key, specialist_id, generation)}.ics"


async def feed_urls(settings: Settings, store: Store, practice: Practice, base: str | None = None) -> dict[str, str]:
    """Every specialist's current feed URL (after any `bookingbot feed rotate`)."""
    key = feed_key(settings.data_dir)
    async with store.tx() as tx:
        generations = await tx.feed_generations()
    return {s.id: feed_url(settings, key, s.id, base, generations.get(s.id, 0)) for s in practice.specialists}


def feed_calendar(name: str, specs: list[EventSpec]) -> bytes:
    """One VCALENDAR holding many events, each mapped exactly as in the client's .ics file."""
    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("METHOD", "PUBLISH")
    cal.add("X-WR-CALNAME", name)
    # Subscribers poll; ask for a refresh every 15 minutes where the app honours it.
    cal.add("REFRESH-INTERVAL", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    cal.add("X-PUBLISHED-TTL", timedelta(minutes=15))
    for spec in specs:
        for ev in Calendar.from_ical(ics_bytes(spec)).walk("VEVENT"):
            cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp's access log without feed tokens (they are passwords): pass as `access_log_class`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _FEED_PATH.sub(r"\1<token>.ics", request.path)
        self.logger.info("%s %s %s %.3fs", request.method, path, response.status, time)


async def health_report(runtime: Runtime) -> dict[str, Any]:
    """The bot's health: `status` is ok, degraded or error; the other keys say why (no personal data).

    Every reason for "degraded" or "error" is decided here, in one place.
    """
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            async with runtime.store.tx() as tx:
                backlog = await tx.outbox_backlog()
            failing = await runtime.booking.sync.backlog_failing()
    except Exception as exc:
        log.warning("health: database check failed: %s", type(exc).__name__)
        reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
        return {"status": "error", "database": f"error: {reason}"}
    body["outbox_pending"] = sum(count for count, _ in backlog.values())
    calendars: dict[str, str] = {}
    signed_in = await runtime.connections.status()
    for spec in runtime.practice.specialists:
        if spec.id in signed_in:
            if signed_in[spec.id]["state"] != "connected":
                calendars[spec.id] = signed_in[spec.id]["state"]  # not signed in, choosing, revoked
                body["status"] = "degraded"
                continue
        elif (since := runtime.gateway.unavailable.get(spec.id)) is not None:
            # Unreachable at start: nothing of theirs is offered until the background reconnect succeeds.
            calendars[spec.id] = f"unreachable since {since.isoformat()}, reconnecting"
            body["status"] = "degraded"
            continue
        else:
            try:
                runtime.gateway.booking_calendar_url(spec.id)
            except CalendarUnavailable:
                calendars[spec.id] = "not connected"
                continue
        _, attempts = backlog.get(spec.id, (0, 0))
        if spec.id in failing:
            # Past the alert time: staff were told, and the backlog is a real problem.
            calendars[spec.id] = f"writes failing since {failing[spec.id].isoformat()}"
            body["status"] = "degraded"
        else:
            # Failed writes waiting for a retry mean the server is refusing or unreachable right now.
            calendars[spec.id] = "retrying writes" if attempts else "ok"
    body["calendars"] = calendars
    feeds = runtime.feeds.status()
    if feeds:
        body["busy_feeds"] = feeds
        if any(row["state"] != "ok" for rows in feeds.values() for row in rows):
            body["status"] = "degraded"
    return body


def _may_see_detail(request: web.Request) -> bool:
    """Whether the request carries the health token (`Authorization: Bearer <token>`); none set: nobody does."""
    token = request.app[HEALTH_TOKEN_KEY]
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


async def health(request: web.Request) -> web.Response:
    """/healthz: 200 while the bot works (ok or degraded), 503 when it cannot (error).

    Only the status for anyone; the reasons (specialists' ids, calendar errors, backlogs) only with the token.
    """
    body = await health_report(request.app[RUNTIME_KEY])
    status = 503 if body["status"] == "error" else 200
    return web.json_response(body if _may_see_detail(request) else {"status": body["status"]}, status=status)


class RefusalLog:
    """Warnings about refused webhook posts, at most one per `every` seconds with a count of the rest.

    Anyone who finds the webhook's address can post to it; a flood of forged posts must not flood the log.
    """

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self._last: float | None = None
        self._quiet = 0

    def refused(self) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            self._quiet += 1
            return
        if self._quiet:
            log.warning(
                "webhook: refused %d more requests without the right secret token since the last warning",
                self._quiet + 1,
            )
        else:
            log.warning("webhook: refused a request without the right secret token")
        self._last, self._quiet = now, 0


def webhook_handler(app: Application, secret: str, refusals: RefusalLog | None = None) -> Any:
    """POST handler that checks Telegram's secret header and queues the update for the Application."""
    expected = secret.encode("utf-8")
    refusals = refusals or RefusalLog()

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(given, expected):
            refusals.refused()
            return web.Response(status=403)
        try:
            data = json.loads(await request.read())
            if not isinstance(data, dict) or type(data.get("update_id")) is not int:
                raise ValueError("not an update object")
            update = Update.de_json(drop_tapped_keyboard(data), app.bot)
        except web.HTTPRequestEntityTooLarge:
            raise
        except Exception as exc:
            log.warning("webhook: refused a body that is not an update: %s", type(exc).__name__)
            return web.Response(status=400)
        query = update.callback_query
        waiting = webhook_reply.expect(query.id) if query is not None else None
        await app.update_queue.put(update)
        if query is None or waiting is None:
            return web.Response(status=200)
        body = await webhook_reply.response_body(query.id, waiting)
        return web.json_response(body) if body else web.Response(status=200)

    return webhook


async def feed(request: web.Request) -> web.Response:
    """A specialist's requested and confirmed appointments, 30 days back to the booking horizon."""
    runtime = request.app[RUNTIME_KEY]
    spec_id = request.match_info["specialist_id"]
    async with runtime.store.tx() as tx:
        generation = await tx.feed_generation(spec_id)
    expected = feed_token(request.app[FEED_KEY], spec_id, generation).encode("ascii")
    given = request.match_info["token"].encode("utf-8")
    spec = runtime.practice.specialist_by_id.get(spec_id)
    # Same answer for a wrong token and an unknown specialist: ids cannot be probed.
    if not hmac.compare_digest(given, expected) or spec is None:
        raise web.HTTPNotFound()
    now = runtime.booking.clock()
    practice = runtime.practice
    detail = feed_detail(practice, spec_id)
    async with runtime.store.tx() as tx:
        appts = await tx.active_appointments(spec_id, now - FEED_PAST, now + timedelta(days=spec.horizon_days + 1))
        specs = [event_for(practice, a, a.client, detail) for a in appts if a.group_id is None]
        # A group session is one event, as in the calendar, not one per seat.
        for group_id in sorted({a.group_id for a in appts if a.group_id is not None}):
            group = await tx.get_group(group_id)
            seats = await tx.group_seats(group_id)
            if group is not None and (session := group_event_for(practice, group, seats, detail)) is not None:
                specs.append(session)
    body = feed_calendar(f"{practice.practice.name}: {spec.name}", specs)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Cache-Control": "no-cache, private", "X-Robots-Tag": "noindex"},
    )


async def oauth_callback(request: web.Request) -> web.Response:
    """Where Google or Microsoft send the specialist's browser after sign-in: finish it, continue in Telegram."""
    runtime = request.app[RUNTIME_KEY]
    _ = gettext_for(runtime.practice.practice.language)
    try:
        code, state = code_from_address(str(request.url))
        await finish_sign_in(request.app[TELEGRAM_KEY].bot, runtime.deps, state, code)
    except (SignInFailed, CalendarUnavailable) as exc:
        log.warning("sign-in callback failed: %s", type(exc).__name__)
        return web.Response(text=_("Signing in did not work. Send /connect in Telegram to try again."), status=400)
    return web.Response(text=_("Signed in. Go back to Telegram to choose your calendar."))


def make_web_app(runtime: Runtime, app: Application, settings: Settings) -> web.Application:
    """The aiohttp application serving /healthz, the webhook (in webhook mode), the feeds and the partner API."""
    web_app = web.Application(client_max_size=MAX_BODY)
    web_app[RUNTIME_KEY] = runtime
    web_app[TELEGRAM_KEY] = app
    web_app[FEED_KEY] = feed_key(settings.data_dir)
    web_app[HEALTH_TOKEN_KEY] = settings.health_token or ""
    web_app.router.add_get("/healthz", health)
    web_app.router.add_get("/feeds/{specialist_id}/{token}.ics", feed)
    web_app.router.add_get("/oauth/callback", oauth_callback)
    if runtime.practice.partners:
        # Imported here: the partner API (pydantic models, the limits package) is resident only where it is used.
        from partner_api.app import mount as mount_partner_api

        mount_partner_api(web_app, runtime.partners, os.environ)
    if settings.webhook_url:
        if len(settings.webhook_secret or "") < MIN_SECRET_CHARS:
            raise ValueError(f"webhook mode needs a webhook secret of at least {MIN_SECRET_CHARS} characters")
        path = urlsplit(settings.webhook_url).path or "/"
        web_app.router.add_post(path, webhook_handler(app, settings.webhook_secret))
    return web_app
