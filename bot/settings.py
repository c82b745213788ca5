"""Runtime settings from the environment (and the same-named options of `bookingbot run`), and logging."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "https://api.telegram.org"


class SettingsError(Exception):
    """A runtime setting is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    token: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    config: Path = Path("practice.toml")
    data_dir: Path = Path("data")
    database_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    public_url: str | None = None
    listen: str = "127.0.0.1:8080"
    caldav_host: str = "127.0.0.1"
    caldav_port: int = 5232
    # E-mail to clients who gave an address; off without a host.
    smtp_host: str | None = None
    smtp_port: int | None = None  # default: 465 with tls, else 587 (25 with none)
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_security: str = "starttls"  # starttls, tls or none
    smtp_from: str | None = None
    # Who may read /healthz in detail; everyone else sees only ok, degraded or error.
    health_token: str | None = field(default=None, repr=False)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'bookingbot.db').resolve()}"

    @property
    def bot_base_url(self) -> str:
        """What python-telegram-bot needs: it appends `<token>/<method>`."""
        return self.api_url.rstrip("/") + "/bot"

    @property
    def bot_file_url(self) -> str:
        return self.api_url.rstrip("/") + "/file/bot"

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


ENV = {
    "token": "BOOKINGBOT_TELEGRAM_TOKEN",
    "api_url": "BOOKINGBOT_TELEGRAM_API_URL",
    "config": "BOOKINGBOT_CONFIG",
    "data_dir": "BOOKINGBOT_DATA_DIR",
    "database_url": "BOOKINGBOT_DATABASE_URL",
    "webhook_url": "BOOKINGBOT_WEBHOOK_URL",
    "webhook_secret": "BOOKINGBOT_WEBHOOK_SECRET",
    "public_url": "BOOKINGBOT_PUBLIC_URL",
    "listen": "BOOKINGBOT_LISTEN",
    "caldav_host": "BOOKINGBOT_CALDAV_HOST",
    "caldav_port": "BOOKINGBOT_CALDAV_PORT",
    "smtp_host": "BOOKINGBOT_SMTP_HOST",
    "smtp_port": "BOOKINGBOT_SMTP_PORT",
    "smtp_user": "BOOKINGBOT_SMTP_USER",
    "smtp_password": "BOOKINGBOT_SMTP_PASSWORD",
    "smtp_security": "BOOKINGBOT_SMTP_SECURITY",
    "smtp_from": "BOOKINGBOT_SMTP_FROM",
    "health_token": "BOOKINGBOT_HEALTH_TOKEN",
}
# Long random strings: a short one can be guessed by whoever can reach the endpoint.
MIN_SECRET_CHARS = 32
MAKE_SECRET = "make one with `openssl rand -hex 32`"

SMTP_SECURITY = ("starttls", "tls", "none")


def load_settings(overrides: dict[str, str | None] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from command-line overrides, then the environment, then defaults; raise SettingsError if wrong."""
    env = dict(os.environ) if env is None else env
    raw: dict[str, str] = {}
    for name, var in ENV.items():
        value = (overrides or {}).get(name) or env.get(var)
        if value:
            raw[name] = value.strip()
    values: dict[str, object] = dict(raw)
    for name in ("config", "data_dir"):
        if name in raw:
            values[name] = Path(raw[name]).expanduser()
    if "caldav_port" in raw:
        if not raw["caldav_port"].isdigit() or not 0 <= int(raw["caldav_port"]) < 65536:
            raise SettingsError(f"{ENV['caldav_port']}: {raw['caldav_port']!r} is not a port number")
        values["caldav_port"] = int(raw["caldav_port"])
    if "listen" in raw:
        _, sep, port = raw["listen"].rpartition(":")
        if not sep or not port.isdigit():
            raise SettingsError(f"{ENV['listen']}: {raw['listen']!r} is not host:port")
    if "database_url" in raw:
        values["database_url"] = _database_url(raw["database_url"])
    _check_smtp(raw, values)
    for name in ("api_url", "webhook_url", "public_url"):
        if name in raw and not raw[name].startswith(("http://", "https://")):
            raise SettingsError(f"{ENV[name]}: {raw[name]!r} is not an http(s) URL")
    if "webhook_url" in raw and "webhook_secret" not in raw:
        raise SettingsError(f"{ENV['webhook_secret']}: required in webhook mode (any long random string)")
    for name in ("webhook_secret", "health_token"):
        if name in raw and len(raw[name]) < MIN_SECRET_CHARS:
            raise SettingsError(
                f"{ENV[name]}: at least {MIN_SECRET_CHARS} characters, this one has {len(raw[name])}; {MAKE_SECRET}"
            )
    return Settings(**values)  # type: ignore[arg-type]


def _database_url(url: str) -> str:
    """The URL if bookingbot can use it; otherwise a SettingsError that names the scheme, never the password."""
    from sqlalchemy.exc import ArgumentError

    from scheduling.db import async_url

    use = "use sqlite:///path/to/file.db or postgresql://user:password@host:5432/database"
    if "://" not in url:
        raise SettingsError(f"{ENV['database_url']}: not a database URL; {use}")
    try:
        async_url(url)
    except (ValueError, ArgumentError):
        scheme = url.partition(":")[0]
        raise SettingsError(f"{ENV['database_url']}: {scheme!r} databases are not supported; {use}") from None
    return url


def _check_smtp(raw: dict[str, str], values: dict[str, object]) -> None:
    """SMTP settings hang together: a sender for a host, a port number, a known security mode."""
    if "smtp_port" in raw:
        if not raw["smtp_port"].isdigit() or not 0 < int(raw["smtp_port"]) < 65536:
            raise SettingsError(f"{ENV['smtp_port']}: {raw['smtp_port']!r} is not a port number")
        values["smtp_port"] = int(raw["smtp_port"])
    if "smtp_security" in raw:
        values["smtp_security"] = raw["smtp_security"].lower()
        if values["smtp_security"] not in SMTP_SECURITY:
            raise SettingsError(f"{ENV['smtp_security']}: use one of {', '.join(SMTP_SECURITY)}")
    if "smtp_host" in raw and "@" not in raw.get("smtp_from", ""):
        raise SettingsError(f"{ENV['smtp_from']}: the address e-mails come from (e.g. bookings@example.org)")
    if "smtp_user" in raw and "smtp_password" not in raw:
        raise SettingsError(f"{ENV['smtp_password']}: the password of {ENV['smtp_user']}")


def require_token(settings: Settings) -> str:
    """The bot token, or a SettingsError telling where to get one."""
    token = settings.token
    if not token or ":" not in token:
        raise SettingsError(f"{ENV['token']}: set it to the token @BotFather gave you (looks like 123456:ABC...)")
    return token


# --- logging ---------------------------------------------------------------------------------------

FORMAT_ENV = "BOOKINGBOT_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that speak at INFO about routine work: the HTTP client logs request URLs (they carry the bot
# token), the job queue two lines per periodic sweep even when it had nothing to do, Alembic its set-up on
# every start (scheduling.migrations says itself when it upgraded the schema).
QUIET = ("httpx", "apscheduler", "alembic")


# What a log line never carries, whoever wrote it: the bot token (the HTTP libraries put it in every URL they
# log) and long hex runs (feed tokens, webhook paths, sign-in states are 32 hex characters).
_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")
# Exceptions whose messages are about the network and the file system, never about a client: kept in tracebacks.
_SAFE_MESSAGES: tuple[type[BaseException], ...] = (OSError,)
# bookingbot's own packages: `-v` makes them log at DEBUG. Libraries stay at INFO, since at DEBUG they log
# whole requests (message texts with clients' names) and SQL parameters.
OWN_LOGGERS = ("bot", "scheduling", "caldav_bridge", "providers", "partner_api", "bookingbot", "tgemu")


def redact(text: str) -> str:
    """The text without the bot token or any run of 32 or more hex characters."""
    return _HEX_RUN.sub("<redacted>", _TOKEN.sub("<token>", text))


def _headline(exc: BaseException) -> str:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(exc, _SAFE_MESSAGES):
        return f"{name}: {exc}\n" if str(exc) else f"{name}\n"
    # Any other message may quote what a client typed (a parse error, a constraint, a Telegram answer).
    return f"{name}: (message withheld: it may hold clients' data)\n"


def format_exception_safely(exc: BaseException) -> str:
    """A traceback with every frame, and only the types of exceptions whose messages might quote a client."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for i, item in enumerate(reversed(chain)):
        if i:
            direct = item.__cause__ is chain[len(chain) - i]
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if direct
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        parts.append(_headline(item))
    return "".join(parts).rstrip("\n")


class SafeFormatter(logging.Formatter):
    """Text lines with redact() applied and tracebacks from format_exception_safely()."""

    def formatException(self, ei: Any) -> str:
        return format_exception_safely(ei[1]) if ei and ei[1] is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        # Never the traceback another handler cached on the record: it may hold the messages withheld here.
        cached, record.exc_text = record.exc_text, None
        try:
            return redact(super().format(record))
        finally:
            record.exc_text = cached


class JSONFormatter(SafeFormatter):
    """One JSON object per line: time (UTC), level, logger, message, and the exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def log_format(env: dict[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(FORMAT_ENV, "").strip().lower() or "text"
    if value not in FORMATS:
        raise SettingsError(f"{FORMAT_ENV}: {value!r} is not one of {', '.join(FORMATS)}")
    return value


def configure_logging(*, verbose: bool = False, fmt: str = "text") -> None:
    """Log to stderr at INFO (bookingbot's own modules at DEBUG when verbose); routine library chatter stays quiet.

    No line carries the bot token, a long hex run or a message of an exception that might quote a client.
    """
    handler = _Stderr()
    handler.setFormatter(JSONFormatter() if fmt == "json" else SafeFormatter(TEXT_FORMAT))
    handler.set_name("bookingbot")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "bookingbot"]:
        root.removeHandler(old)  # configured again (tests call main() more than once)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.NOTSET)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
