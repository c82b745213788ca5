"""`bookingbot check`: one verdict per item (practice file, settings, token, every calendar) with the fix."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot
from telegram.error import InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from bot.settings import DEFAULT_API_URL, ENV, Settings
from bot.web import feed_key, feed_url, public_base
from caldav_bridge.client import CalDAVAuthError, CalendarInfo, account_for, list_calendars, pick
from providers.connections import Connections
from providers.feeds import BusyFeeds, feed_address
from providers.oauth import TOKEN_KEY_ENV, TokenVault, providers_from_env
from scheduling.calendar import CalendarUnavailable
from scheduling.config import ConfigError, Practice, Specialist, load_practice
from scheduling.db import async_url, make_engine
from scheduling.partners import weekly_supply
from scheduling.store import Store

OK, BAD, SKIP, WARN = "✔", "✘", "–", "!"
TIMEOUT = 10.0
PARTNER_WEEKS = 4  # how many coming weeks the partners' minimum supply is checked for
TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]{30,}$")
# Telegram's rule for setWebhook's secret_token.
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass
class Report:
    """Verdict lines printed as they come; `failed` decides the exit code."""

    failed: int = 0
    secrets: list[str] = field(default_factory=list)

    def line(self, mark: str, text: str, indent: int = 0, *, count: bool = True) -> None:
        for secret in self.secrets:
            text = text.replace(secret, "<hidden>")
        if mark == BAD and count:
            self.failed += 1
        print(f"{'  ' * indent}{mark} {text}", flush=True)


def check_practice(report: Report, path: Path) -> Practice | None:
    try:
        practice = load_practice(path)
    except ConfigError as exc:
        report.line(BAD, f"practice file {path}: {len(exc.errors)} problem(s); fix each field named:", count=False)
        for err in exc.errors:
            report.line(BAD, err, indent=1)
        return None
    report.line(
        OK,
        f"practice file {path}: {len(practice.locations)} location(s), {len(practice.services)} service(s), "
        f"{len(practice.specialists)} specialist(s)",
    )
    return practice


def check_token_format(report: Report, settings: Settings) -> bool:
    token = settings.token
    if not token:
        report.line(
            SKIP,
            f"Telegram token: not checked: no token (set {ENV['token']} before `bookingbot run`; "
            "`bookingbot demo` needs none)",
        )
        return False
    if not TOKEN_RE.match(token):
        report.line(BAD, f"{ENV['token']}: does not look like a bot token (123456789:AA... from @BotFather)")
        return False
    return True


async def check_token(report: Report, settings: Settings) -> None:
    """getMe against the configured Bot API server."""
    assert settings.token is not None
    request = HTTPXRequest(connect_timeout=TIMEOUT / 2, read_timeout=TIMEOUT / 2, write_timeout=TIMEOUT / 2)
    bot = Bot(settings.token, base_url=settings.bot_base_url, request=request)
    where = "Telegram" if settings.api_url == DEFAULT_API_URL else f"the Bot API server at {settings.api_url}"
    try:
        async with asyncio.timeout(TIMEOUT):
            me = await bot.get_me()
    except InvalidToken:
        hint = "" if settings.api_url == DEFAULT_API_URL else f" (or {ENV['api_url']} is not a Bot API server)"
        report.line(BAD, f"{ENV['token']}: {where} refused the token; copy it again from @BotFather (/token){hint}")
        return
    except (TelegramError, TimeoutError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        report.line(
            BAD,
            f"Telegram token: cannot reach {where}: {reason}; check the network or {ENV['api_url']}",
        )
        return
    finally:
        await request.shutdown()
    report.line(OK, f"Telegram token: {where} knows the bot as @{me.username} ({me.first_name})")


def _writable_dir(path: Path) -> Path | None:
    """The nearest existing folder of `path` if it can be written to, else None."""
    probe = path.resolve()
    while not probe.exists():
        probe = probe.parent
    return probe if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK) else None


def check_sqlite(report: Report, db: Path) -> None:
    if db.exists():
        report.line(OK, f"database: SQLite file {db}")
    elif _writable_dir(db.parent) is not None:
        report.line(OK, f"database: SQLite file {db} (created on the first run)")
    else:
        report.line(BAD, f"{ENV['database_url']}: the SQLite file {db} cannot be created there")


async def check_settings(report: Report, settings: Settings) -> None:
    if _writable_dir(settings.data_dir) is None:
        report.line(BAD, f"{ENV['data_dir']}: {settings.data_dir} cannot be created or written to")
    else:
        report.line(OK, f"data folder: {settings.data_dir.resolve()}")
    url = async_url(settings.db_url)
    if url.get_backend_name() == "sqlite":
        check_sqlite(report, Path(url.database or ""))
    else:
        engine = make_engine(settings.db_url)
        try:
            async with asyncio.timeout(TIMEOUT), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            report.line(OK, f"database: PostgreSQL at {url.host or 'localhost'}/{url.database} answers")
        except Exception as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
            report.line(
                BAD,
                f"{ENV['database_url']}: cannot connect to PostgreSQL at {url.host or 'localhost'}/"
                f"{url.database} ({reason}); check host, database, user and password",
            )
        finally:
            await engine.dispose()
    if settings.webhook_url:
        if settings.webhook_url.startswith("http://") and settings.api_url == DEFAULT_API_URL:
            report.line(BAD, f"{ENV['webhook_url']}: Telegram only posts to https:// URLs")
        else:
            report.line(OK, f"webhook mode: Telegram posts to {settings.webhook_url}")
        if not SECRET_RE.match(settings.webhook_secret or ""):
            report.line(
                BAD,
                f"{ENV['webhook_secret']}: Telegram allows only letters, digits, _ and -, up to 256 characters",
            )
    else:
        report.line(OK, "long polling (no webhook URL set)")


async def check_caldav(report: Report, spec: Specialist) -> None:
    """Connect, list the calendars, and find the booking and busy calendars of one specialist."""
    cfg = spec.caldav
    who = f"specialist {spec.id}: CalDAV user {cfg.username!r} at {cfg.url}"
    try:
        account = account_for(spec)
    except CalendarUnavailable as exc:
        report.line(BAD, f"{exc}; put it in .env or the environment")
        return
    if account.password:
        report.secrets.append(account.password)
    try:
        found = await list_calendars(account.url, account.username, account.password, request_timeout=TIMEOUT)
    except CalDAVAuthError:
        report.line(
            BAD,
            f"{who}: the server refused the login; check caldav.username and the password in "
            f"{cfg.password_env} (many servers need an app password)",
        )
        return
    except CalendarUnavailable as exc:
        report.line(BAD, f"{who}: {exc}")
        return
    names = ", ".join(repr(name) for name, _ in found) or "none"
    report.line(OK, f"{who}: connected; calendars found: {names}")
    infos = [CalendarInfo(name, url) for name, url in found]
    for role, wanted in [("booking", account.booking_calendar)] + [("busy", b) for b in account.busy_calendars]:
        try:
            cal = pick(infos, wanted, f"specialist {spec.id}")
        except CalendarUnavailable:
            key = "caldav.booking_calendar" if role == "booking" else "caldav.busy_calendars"
            report.line(
                BAD,
                f"specialist {spec.id}: {role} calendar {wanted!r} not found; create it in the calendar app "
                f"or set {key} to one of the calendars found",
                indent=1,
            )
        else:
            report.line(OK, f"{role} calendar {wanted!r}: {cal.url}", indent=1)


async def check_connection(report: Report, settings: Settings, practice: Practice, spec: Specialist) -> None:
    """A Google or Microsoft specialist: the sign-in settings, and their stored sign-in with a fresh token."""
    provider = providers_from_env().get(spec.calendar_kind)
    name = spec.calendar_kind.capitalize()
    if provider is None:
        var = f"BOOKINGBOT_{spec.calendar_kind.upper()}_CLIENT_ID"
        report.line(BAD, f"specialist {spec.id}: calendar = {spec.calendar_kind!r} needs {var} (docs/calendars.md)")
        return
    try:
        vault = TokenVault.from_env()
    except ValueError as exc:
        report.line(BAD, str(exc))
        return
    if vault is None:
        report.line(BAD, f"specialist {spec.id}: {TOKEN_KEY_ENV} is not set; make one with `bookingbot token-key`")
        return
    engine = make_engine(settings.db_url)
    try:
        connections = Connections(practice, Store(engine), {provider.name: provider}, vault, {})
        try:
            status = (await connections.status())[spec.id]
        except SQLAlchemyError:  # no database yet: `run` creates it
            status = {"state": "not signed in"}
        if status["state"] != "connected":
            report.line(
                BAD,
                f"specialist {spec.id}: {name} calendar {status['state']}; they send /connect "
                f"{spec.calendar_kind} to the bot",
            )
            return
        try:
            await connections.verify(spec.id)
        except CalendarUnavailable as exc:
            report.line(BAD, f"specialist {spec.id}: {name} sign-in of {status['account']} does not work: {exc}")
            return
        busy = ", ".join(repr(b) for b in status["busy"]) or "none"
        report.line(
            OK,
            f"specialist {spec.id}: {name} calendar of {status['account']}, token valid; bookings go to "
            f"{status['booking']!r}, busy calendars {busy}; signed in {status['since']}",
        )
    finally:
        await engine.dispose()


async def check_busy_feeds(report: Report, practice: Practice, spec: Specialist) -> None:
    """Read each of the specialist's busy feeds once, as the running bot would."""
    feeds = BusyFeeds(practice)
    try:
        for state in feeds.feeds.get(spec.id, []):
            address = feed_address(state.feed)
            if address:
                report.secrets.append(address)
            await feeds.load(spec.id, state)
            if state.busy is None:
                report.line(
                    BAD,
                    f"specialist {spec.id}: busy feed {state.label} cannot be read ({state.error}); "
                    "until it is, their days stay closed",
                    indent=1,
                )
            else:
                report.line(OK, f"busy feed {state.label}: {len(state.busy)} busy times ahead", indent=1)
    finally:
        await feeds.close()


def check_partners(report: Report, practice: Practice, today: date, weeks: int = PARTNER_WEEKS) -> None:
    """Each partner's API keys are in the environment, and its weekly supply of slots meets its minimum."""
    for partner in practice.partners:
        present = [name for name in partner.key_envs if os.environ.get(name, "").strip()]
        if not present:
            report.line(BAD, f"partner {partner.id}: no API key set; set {' or '.join(partner.key_envs)}")
        else:
            missing = sorted(set(partner.key_envs) - set(present))
            note = f" ({', '.join(missing)} not set)" if missing else ""
            report.line(OK, f"partner {partner.id}: {len(present)} API key(s){note}")
        if partner.webhook_url and not os.environ.get(partner.webhook_secret_env, "").strip():
            report.line(BAD, f"partner {partner.id}: set {partner.webhook_secret_env}, the webhook signing secret")
        if not partner.min_weekly_slots:
            continue
        for week in range(weeks):
            first = today + timedelta(days=7 * week)
            supply = weekly_supply(practice, partner, first)
            if supply < partner.min_weekly_slots:
                report.line(
                    WARN,
                    f"partner {partner.id}: {supply} visit(s) open to it in the week from {first.isoformat()}, "
                    f"below its minimum of {partner.min_weekly_slots}; open more windows to partner:{partner.id}",
                    indent=1,
                )


def print_feeds(report: Report, settings: Settings, practice: Practice) -> None:
    """The read-only ICS feed of every specialist (for Outlook and other subscribe-only apps)."""
    try:
        key = feed_key(settings.data_dir)
    except (OSError, ValueError) as exc:
        report.line(BAD, f"ICS feeds: {exc}")
        return
    base = public_base(settings)
    note = "" if settings.webhook_url else " (reachable from this machine only until the bot has a public URL)"
    report.line(OK, f"read-only ICS feeds{note}:")
    for spec in practice.specialists:
        print(f"    {spec.id}: {feed_url(settings, key, spec.id, base)}", flush=True)


async def run_check(settings: Settings) -> int:
    """Check everything `bookingbot run` needs; 0 when all is good, 1 otherwise."""
    report = Report(secrets=[s for s in (settings.token, settings.webhook_secret) if s])
    practice = check_practice(report, settings.config)
    await check_settings(report, settings)
    if check_token_format(report, settings):
        await check_token(report, settings)
    if practice is not None:
        for spec in practice.specialists:
            if not spec.telegram_id and not practice.practice.admins:
                report.line(
                    BAD,
                    f"specialist {spec.id}: nobody can approve their requests; set telegram_id to their "
                    "numeric Telegram user id, or list admins under [practice]",
                )
            if spec.caldav.url:
                await check_caldav(report, spec)
            elif spec.calendar_kind in ("google", "microsoft"):
                await check_connection(report, settings, practice, spec)
            else:
                report.line(
                    OK,
                    f"specialist {spec.id}: embedded calendar; `bookingbot run` starts it and prints "
                    "its address and login",
                )
            if spec.busy_feeds:
                await check_busy_feeds(report, practice, spec)
        check_partners(report, practice, datetime.now(ZoneInfo(practice.practice.timezone)).date())
        print_feeds(report, settings, practice)
    if report.failed:
        print(f"{report.failed} problem(s) found.", flush=True)
        return 1
    print("All good.", flush=True)
    return 0
