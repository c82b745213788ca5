"""Runtime settings from the environment (and the same-named options of `bookingbot run`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
}


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
    for name in ("api_url", "webhook_url", "public_url"):
        if name in raw and not raw[name].startswith(("http://", "https://")):
            raise SettingsError(f"{ENV[name]}: {raw[name]!r} is not an http(s) URL")
    if "webhook_url" in raw and "webhook_secret" not in raw:
        raise SettingsError(f"{ENV['webhook_secret']}: required in webhook mode (any long random string)")
    return Settings(**values)  # type: ignore[arg-type]


def require_token(settings: Settings) -> str:
    """The bot token, or a SettingsError telling where to get one."""
    token = settings.token
    if not token or ":" not in token:
        raise SettingsError(f"{ENV['token']}: set it to the token @BotFather gave you (looks like 123456:ABC...)")
    return token
