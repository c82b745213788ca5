"""bookingbot: Telegram appointment booking with the specialists' own CalDAV calendars."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bot.backup import BackupError, Summary
from bot.settings import ENV, Settings, SettingsError, configure_logging, load_settings, log_format
from providers.oauth import TOKEN_KEY_ENV, TokenVault
from scheduling.calendar import CalendarUnavailable
from scheduling.config import ConfigError, Practice, load_practice

log = logging.getLogger("bookingbot")

PACKAGE = Path(__file__).resolve().parent
# Inside the package once installed (setup.py copies it there); at the top of a checkout.
EXAMPLE = PACKAGE / "practice.example.toml"
if not EXAMPLE.exists():
    EXAMPLE = PACKAGE.parent / "practice.example.toml"
DEMO_DATA = "demo-data"
ENV_TEMPLATE = """\
# bookingbot secrets and runtime settings. Keep this file out of version control.
# The bot reads them from the environment: `set -a; . ./.env; set +a` before `bookingbot run`.
BOOKINGBOT_TELEGRAM_TOKEN=
# BOOKINGBOT_TELEGRAM_API_URL=https://api.telegram.org
BOOKINGBOT_CONFIG=practice.toml
BOOKINGBOT_DATA_DIR=data
# BOOKINGBOT_DATABASE_URL=postgresql://bookingbot@localhost/bookingbot
# Webhook mode (leave unset for long polling); the secret was made for you, random and long enough:
# BOOKINGBOT_WEBHOOK_URL=https://bot.example.org/telegram
# BOOKINGBOT_WEBHOOK_SECRET={webhook_secret}
# BOOKINGBOT_LISTEN=127.0.0.1:8080
# /healthz shows only ok, degraded or error; with this token (Authorization: Bearer ...) also why:
# BOOKINGBOT_HEALTH_TOKEN={health_token}
# Embedded calendar server:
# BOOKINGBOT_CALDAV_HOST=127.0.0.1
# BOOKINGBOT_CALDAV_PORT=5232
# Google and Microsoft sign-ins (docs/calendars.md); make the key with `bookingbot token-key`:
# BOOKINGBOT_TOKEN_KEY=
# BOOKINGBOT_GOOGLE_CLIENT_ID=
# BOOKINGBOT_GOOGLE_CLIENT_SECRET=
# BOOKINGBOT_MICROSOFT_CLIENT_ID=
# BOOKINGBOT_MICROSOFT_CLIENT_SECRET=
# One line per external CalDAV account named by password_env in the practice file, e.g.:
# BOOKINGBOT_CALDAV_PASSWORD_JONAS=
"""

# What `--help` says a setting defaults to when the Settings default (None) says nothing.
DEFAULT_TEXT = {
    "database_url": "SQLite in the data folder",
    "webhook_url": "not set: long polling",
    "public_url": "the webhook's, else the listen address",
}
ALL_SETTINGS = tuple(ENV)
# What the commands that print feed addresses read: the database and where the web endpoints are reached.
WEB_SETTINGS = ("config", "data_dir", "database_url", "public_url", "webhook_url", "listen")


def package_version() -> str:
    try:
        return version("bookingbot")
    except PackageNotFoundError:  # a checkout run without installing it
        return "unknown (not installed)"


def _settings_args(parser: argparse.ArgumentParser, names: Sequence[str], defaults: dict[str, str]) -> None:
    """One option per setting the subcommand uses, e.g. --data-dir for BOOKINGBOT_DATA_DIR, with its default."""
    group = parser.add_argument_group("settings (each overrides its environment variable)")
    for name in names:
        default = defaults.get(name) or DEFAULT_TEXT.get(name) or Settings.__dataclass_fields__[name].default
        default = "not set" if default is None else default
        group.add_argument(
            f"--{name.replace('_', '-')}", dest=name, metavar="VALUE", help=f"${ENV[name]} (default: {default})"
        )


def _overrides(args: argparse.Namespace) -> dict[str, str | None]:
    return {name: getattr(args, name, None) for name in ENV}


def _load(args: argparse.Namespace) -> tuple[Settings, Practice]:
    settings = load_settings(_overrides(args))
    return settings, load_practice(settings.config)


def _write_env(path: Path) -> None:
    """The .env template, readable by this user only: it will hold the bot token and passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        # 64 hex characters: Telegram's secret alphabet, twice the minimum length.
        f.write(ENV_TEMPLATE.format(webhook_secret=secrets.token_hex(32), health_token=secrets.token_hex(32)))


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented example practice file and a .env template, never overwriting."""
    target, env = Path(args.config or "practice.toml"), Path(".env")
    for path, write in (
        (target, lambda p: shutil.copyfile(EXAMPLE, p)),
        (env, _write_env),
    ):
        if path.exists():
            print(f"{path} exists already: left as it is")
        else:
            write(path)
            print(f"wrote {path}")
    print(f"Next: edit {target}, put your bot token in .env, then `bookingbot check` and `bookingbot run`.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the practice file, the settings, the token and every calendar; print the fix for each problem."""
    from bot.check import run_check

    return asyncio.run(run_check(load_settings(_overrides(args))))


def cmd_run(args: argparse.Namespace) -> int:
    """Run the bot: long polling, or a webhook when BOOKINGBOT_WEBHOOK_URL is set."""
    from bot.serve import run_loop, serve

    settings, practice = _load(args)
    return run_loop(serve(settings, practice))


def _database_note(summary: Summary, tool: str) -> str:
    if summary.database == "sqlite":
        return " and the SQLite database"
    return f".\nThe database is PostgreSQL: it goes with {tool} (see docs/operating.md)."


def cmd_backup(args: argparse.Namespace) -> int:
    """Write one archive of the SQLite database and the data folder (calendars, feed.key, credentials)."""
    from bot.backup import write_backup

    settings = load_settings(_overrides(args))
    archive = Path(args.archive or f"bookingbot-{datetime.now():%Y%m%d-%H%M%S}.tar.gz")
    summary = write_backup(settings, archive, version=package_version())
    print(
        f"wrote {summary.archive}: {summary.files} file(s) from {settings.data_dir}{_database_note(summary, 'pg_dump')}"
    )
    print("It holds passwords and clients' data: keep it somewhere only you can read.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Unpack a backup archive into an empty data folder (and the SQLite database)."""
    from bot.backup import restore_backup

    settings = load_settings(_overrides(args))
    summary = restore_backup(settings, Path(args.archive))
    print(f"restored {summary.files} file(s) into {settings.data_dir}{_database_note(summary, 'pg_restore')}")
    print("Start the bot as usual: `bookingbot run` upgrades the database schema if the backup is older.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run everything locally with a terminal chat standing in for Telegram; no token needed."""
    from bot.demo import run_demo
    from caldav_bridge.embedded import port_in_use

    overrides = _overrides(args)
    overrides["config"] = overrides["config"] or str(EXAMPLE)
    overrides["data_dir"] = overrides["data_dir"] or DEMO_DATA
    settings = load_settings(overrides)
    if settings.caldav_port and port_in_use(settings.caldav_host, settings.caldav_port):
        print(f"Port {settings.caldav_port} is in use: the demo's calendar server takes a free port instead.")
        settings = replace(settings, caldav_port=0)
    return asyncio.run(run_demo(settings, load_practice(settings.config)))


def cmd_token_key(args: argparse.Namespace) -> int:
    """Print a new key for BOOKINGBOT_TOKEN_KEY (Google and Microsoft sign-ins are stored encrypted with it)."""
    print(f"{TOKEN_KEY_ENV}={TokenVault.new_key()}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a partner's monthly settlement CSV: completed and no-show visits per specialist."""
    from bot.report import default_path, parse_month, require_partner, write_partner_report

    settings, practice = _load(args)
    month = parse_month(args.month)
    require_partner(practice, args.partner)
    path = Path(args.out) if args.out else default_path(args.partner, month)
    with path.open("w", encoding="utf-8", newline="") as out:
        count = asyncio.run(write_partner_report(settings, practice, args.partner, month, out))
    print(f"wrote {path}: {count} visit(s) of partner {args.partner} in {month:%Y-%m}")
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    """Renew a specialist's read-only feed address (`feed rotate <specialist>`): the old one stops working."""
    from bot.admin import rotate_feed

    settings, practice = _load(args)
    asyncio.run(rotate_feed(settings, practice, args.specialist))
    return 0


def cmd_calendars(args: argparse.Namespace) -> int:
    """Print the embedded calendars' addresses and passwords, and the read-only feed addresses."""
    from bot.admin import print_calendars

    settings, practice = _load(args)
    asyncio.run(print_calendars(settings, practice))
    print("These are passwords: keep them out of chats, tickets and logs.")
    return 0


@dataclass(frozen=True)
class Subcommand:
    """A `bookingbot NAME`: its function (named cmd_NAME, docstring = description) and the settings it reads."""

    func: Callable[[argparse.Namespace], int]
    settings: Sequence[str] = ()
    defaults: dict[str, str] | None = None  # help text for defaults that differ from Settings'
    arguments: Callable[[argparse.ArgumentParser], None] | None = None  # its own positional or extra options

    @property
    def name(self) -> str:
        return self.func.__name__.removeprefix("cmd_").replace("_", "-")


def _report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partner", required=True, help="the partner's id in the practice file")
    parser.add_argument("--month", required=True, help="YYYY-MM, in the practice's time zone")
    parser.add_argument("--out", help="the CSV file (default partner-<id>-<month>.csv)")


def _backup_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "archive", nargs="?", help="the archive to write (default: bookingbot-YYYYMMDD-HHMMSS.tar.gz here)"
    )


def _restore_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", help="an archive written by `bookingbot backup`")


def _feed_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["rotate"], help="rotate: give the feed a new address")
    parser.add_argument("specialist", help="the specialist's id in the practice file")


def _init_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="where to write the practice file (default: practice.toml)")


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(cmd_init, arguments=_init_args),
    Subcommand(cmd_check, ALL_SETTINGS),
    Subcommand(cmd_run, ALL_SETTINGS),
    Subcommand(
        cmd_demo,
        ("config", "data_dir", "database_url", "caldav_port"),
        defaults={
            "config": "the bundled example practice",
            "data_dir": DEMO_DATA,
            "caldav_port": "5232, or a free one when that is taken",
        },
    ),
    Subcommand(cmd_backup, ("data_dir", "database_url"), arguments=_backup_args),
    Subcommand(cmd_restore, ("data_dir", "database_url"), arguments=_restore_args),
    Subcommand(cmd_token_key),
    Subcommand(cmd_report, ("config", "data_dir", "database_url"), arguments=_report_args),
    Subcommand(cmd_feed, WEB_SETTINGS, arguments=_feed_args),
    Subcommand(cmd_calendars, (*WEB_SETTINGS, "caldav_host", "caldav_port")),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bookingbot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in SUBCOMMANDS:
        doc = command.func.__doc__ or ""
        p = sub.add_parser(command.name, help=doc.split("\n")[0].rstrip("."), description=doc)
        if command.arguments is not None:
            command.arguments(p)
        if command.settings:
            _settings_args(p, command.settings, command.defaults or {})
        p.set_defaults(func=command.func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(verbose=args.verbose, fmt=log_format())
        return args.func(args)
    except (SettingsError, ConfigError, CalendarUnavailable, BackupError) as exc:
        print(f"bookingbot: cannot start:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
