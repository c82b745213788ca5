"""`bookingbot check`: one verdict per item (practice file, settings, token, every calendar) with the fix."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiosmtplib
import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot
from telegram.error import InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from bot.i18n import available
from bot.mail import Mailer
from bot.settings import DEFAULT_API_URL, ENV, MAKE_SECRET, MIN_SECRET_CHARS, Settings
from bot.web import feed_key, feed_url, public_base
from caldav_bridge.client import CalDAVAuthError, CalendarInfo, account_for, list_calendars, pick
from caldav_bridge.embedded import port_in_use
from providers.connections import Connections
from providers.feeds import BusyFeeds, feed_address
from providers.oauth import TOKEN_KEY_ENV, TokenVault, providers_from_env
from scheduling.calendar import CalendarUnavailable
from scheduling.config import ConfigError, Practice, Specialist, load_practice
from scheduling.db import async_url, make_engine
from scheduling.lint import practice_findings
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


def postgres_reason(exc: BaseException, host: str, port: int) -> str:
    """What PostgreSQL (or the network) said, in words, with the likely fix."""
    server = getattr(getattr(exc, "orig", None), "__cause__", None)
    if server is not None:  # the server's own reason: no such role or database, wrong password, ...
        return f"the server says: {server}; check the user, password and database name in the URL"
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g} s; check the host and the port"
    if isinstance(exc, socket.gaierror):
        return f"the host {host!r} is not found; check its spelling"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens on port {port} there; is PostgreSQL running, and on that port?"
    return f"{type(exc).__name__}: {exc}"


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
            report.line(
                BAD,
                f"{ENV['database_url']}: cannot connect to PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/"
                f"{url.database}: {postgres_reason(exc, url.host or 'localhost', url.port or 5432)}",
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
        elif len(settings.webhook_secret or "") < MIN_SECRET_CHARS:
            report.line(BAD, f"{ENV['webhook_secret']}: at least {MIN_SECRET_CHARS} characters; {MAKE_SECRET}")
    else:
        report.line(OK, "long polling (no webhook URL set)")


async def unreachable_reason(url: str) -> str | None:
    """Why nothing answers at the address of `url`, in words; None when host and port answer."""
    parts = urlsplit(url)
    host, tls = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    try:
        async with asyncio.timeout(TIMEOUT / 2):
            _, writer = await asyncio.open_connection(host, port, ssl=ssl.create_default_context() if tls else None)
        writer.close()
    except socket.gaierror:
        return f"the host {host!r} is not found; check its spelling in {url}"
    except ConnectionRefusedError:
        return f"nothing answers on port {port} of {host}; check the port in {url}"
    except ssl.SSLError:
        return f"{host}:{port} does not answer https; check the port, or whether the server wants http://"
    except TimeoutError:
        return f"no answer from {host}:{port} within {TIMEOUT / 2:g} s; a firewall, or the wrong host or port"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    return None


async def check_smtp(report: Report, settings: Settings) -> None:
    """E-mail is optional: say that it is off, or log in to the SMTP server once."""
    if not settings.smtp_host:
        report.line(SKIP, f"e-mail: off ({ENV['smtp_host']} not set), nothing is e-mailed to clients", count=False)
        return
    mailer_port = Mailer.port_for(settings)
    where = f"SMTP server {settings.smtp_host}:{mailer_port}"
    try:
        async with asyncio.timeout(TIMEOUT):
            smtp = aiosmtplib.SMTP(
                hostname=settings.smtp_host,
                port=mailer_port,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
            )
            await smtp.connect()
            if settings.smtp_user:
                await smtp.login(settings.smtp_user, settings.smtp_password or "")
            await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        report.line(BAD, f"{ENV['smtp_host']}: the {where} refused or did not answer ({type(exc).__name__})")
        return
    report.line(
        OK, f"e-mail: the {where} accepts us; clients who gave an address get e-mails from {settings.smtp_from}"
    )


async def check_caldav(report: Report, spec: Specialist) -> None:
    """Connect, list the calendars, and find the booking and busy calendars of one specialist."""
    cfg = spec.caldav
    who = f"specialist {spec.id}: CalDAV user {cfg.username!r} at {cfg.url}"
    parts = urlsplit(cfg.url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        report.line(
            BAD,
            f"specialists[{spec.id}].caldav.url: {cfg.url!r} is not a full address; write it with https:// "
            "in front (see docs/calendars.md for each server's address)",
        )
        return
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
        reason = await unreachable_reason(cfg.url or "")
        report.line(BAD, f"specialists[{spec.id}].caldav.url: {reason}" if reason else f"{who}: {exc}")
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


async def _feed_generations(settings: Settings) -> dict[str, int]:
    """How often each feed was renewed, from the database if there is one yet (else: never)."""
    url = async_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and not await asyncio.to_thread(Path(url.database or "").exists):
        return {}  # checking never creates the database file
    engine = make_engine(settings.db_url)
    try:
        async with asyncio.timeout(TIMEOUT), Store(engine).tx() as tx:
            return await tx.feed_generations()
    except (SQLAlchemyError, OSError, TimeoutError):
        return {}  # no database or no table yet: `run` creates them, and no feed was renewed
    finally:
        await engine.dispose()


async def print_feeds(report: Report, settings: Settings, practice: Practice) -> None:
    """The read-only ICS feed of every specialist (for Outlook and other subscribe-only apps)."""
    try:
        key = feed_key(settings.data_dir)
    except (OSError, ValueError) as exc:
        report.line(BAD, f"ICS feeds: {exc}")
        return
    base = public_base(settings)
    generations = await _feed_generations(settings)
    note = "" if settings.webhook_url else " (reachable from this machine only until the bot has a public URL)"
    report.line(OK, f"read-only ICS feeds{note}:")
    for spec in practice.specialists:
        url = feed_url(settings, key, spec.id, base, generations.get(spec.id, 0))
        print(f"    {spec.id}: {url}", flush=True)


def check_findings(report: Report, practice: Practice, today: date) -> None:
    """The practice's own mistakes that load fine (scheduling.lint), and a language without a catalog."""
    for finding in practice_findings(practice, today):
        report.line(BAD if finding.never else WARN, f"{finding.field}: {finding.message}")
    if practice.practice.language not in available():
        report.line(
            WARN,
            f"practice.language: {practice.practice.language!r} has no catalog; clients without a language of "
            f"their own are answered in English (catalogs: {', '.join(available())})",
        )


async def _answers_as_bookingbot(url: str, auth: tuple[str, str] | None = None) -> bool:
    """True when the program on that port is a running bookingbot: its health check, or our calendar login."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT / 2) as client:
            if auth is None:
                response = await client.get(url)
                # Without the health token only the status shows, which is enough to know it is ours.
                body = response.json()
                status = body.get("status") if isinstance(body, dict) else None
                return response.status_code in (200, 503) and status in ("ok", "degraded", "error")
            response = await client.request("PROPFIND", url, auth=auth, headers={"Depth": "0"})
            return response.status_code == 207
    except (httpx.HTTPError, ValueError):
        return False


def _embedded_login(settings: Settings) -> tuple[str, str] | None:
    """A login of the embedded calendar server from the data folder, if it ever ran."""
    path = settings.data_dir / "radicale" / "credentials.json"
    try:
        creds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return next(iter(creds.items()), None)


async def check_ports(report: Report, settings: Settings, practice: Practice) -> None:
    """The embedded calendar port and the listen address: free, or held by this bookingbot already."""
    wanted = [("listen", *settings.listen_host_port)]
    if any(s.calendar_kind == "embedded" for s in practice.specialists):
        wanted.append(("caldav_port", settings.caldav_host, settings.caldav_port))
    for name, host, port in wanted:
        try:
            busy = port_in_use(host, port)
        except OSError as exc:
            setting = ENV["listen"] if name == "listen" else ENV["caldav_host"]
            report.line(
                BAD,
                f"{setting}: cannot listen on {host}:{port} ({exc.strerror or exc}); use an address of this machine",
            )
            continue
        what = "web endpoints" if name == "listen" else "embedded calendar server"
        if not busy:
            report.line(OK, f"{what}: {host}:{port} is free")
            continue
        address = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
        login = _embedded_login(settings) if name == "caldav_port" else None
        if name == "caldav_port" and login is not None:
            ours = await _answers_as_bookingbot(f"{address}{login[0]}/", auth=login)
        else:
            ours = name == "listen" and await _answers_as_bookingbot(f"{address}healthz")
        if ours:
            report.line(OK, f"{what}: {host}:{port} is in use by this bookingbot, which is running")
        else:
            report.line(
                BAD,
                f"{ENV[name]}: port {port} on {host} is in use by another program, so `bookingbot run` cannot "
                f"start its {what} there; stop that program or choose a free port",
            )


async def run_check(settings: Settings) -> int:
    """Check everything `bookingbot run` needs; 0 when all is good, 1 otherwise."""
    report = Report(secrets=[s for s in (settings.token, settings.webhook_secret, settings.health_token) if s])
    practice = check_practice(report, settings.config)
    await check_settings(report, settings)
    await check_smtp(report, settings)
    if check_token_format(report, settings):
        await check_token(report, settings)
    if practice is not None:
        check_findings(report, practice, date.today())
        await check_ports(report, settings, practice)
        for spec in practice.specialists:
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
        await print_feeds(report, settings, practice)
    if report.failed:
        print(f"{report.failed} problem(s) found.", flush=True)
        return 1
    print("All good.", flush=True)
    return 0
