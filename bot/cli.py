"""`bookingbot` command line: init, check, run, demo, report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from pathlib import Path

from bot.settings import ENV, Settings, SettingsError, load_settings
from providers.oauth import TOKEN_KEY_ENV, TokenVault
from scheduling.calendar import CalendarUnavailable
from scheduling.config import ConfigError, Practice, load_practice

log = logging.getLogger("bookingbot")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "practice.example.toml"
ENV_TEMPLATE = """\
# bookingbot secrets and runtime settings. Keep this file out of version control.
# The bot reads them from the environment: `set -a; . ./.env; set +a` before `bookingbot run`.
BOOKINGBOT_TELEGRAM_TOKEN=
# BOOKINGBOT_TELEGRAM_API_URL=https://api.telegram.org
BOOKINGBOT_CONFIG=practice.toml
BOOKINGBOT_DATA_DIR=data
# BOOKINGBOT_DATABASE_URL=postgresql://bookingbot@localhost/bookingbot
# Webhook mode (leave unset for long polling):
# BOOKINGBOT_WEBHOOK_URL=https://bot.example.org/telegram
# BOOKINGBOT_WEBHOOK_SECRET=
# BOOKINGBOT_LISTEN=127.0.0.1:8080
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


def _settings_args(parser: argparse.ArgumentParser) -> None:
    for name, var in ENV.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"overrides ${var}")


def _load(args: argparse.Namespace) -> tuple[Settings, Practice]:
    settings = load_settings({name: getattr(args, name, None) for name in ENV})
    return settings, load_practice(settings.config)


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented example practice file and a .env template, never overwriting."""
    target, env = Path(args.config or "practice.toml"), Path(".env")
    for path, write in (
        (target, lambda p: shutil.copyfile(EXAMPLE, p)),
        (env, lambda p: p.write_text(ENV_TEMPLATE)),
    ):
        if path.exists():
            print(f"{path} exists already: left as it is")
        else:
            write(path)
            print(f"wrote {path}")
    print(f"Next: edit {target}, put your bot token in .env, then `bookingbot check` and `bookingbot run`.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.check import run_check

    return asyncio.run(run_check(load_settings({name: getattr(args, name, None) for name in ENV})))


def cmd_run(args: argparse.Namespace) -> int:
    from bot.serve import serve

    settings, practice = _load(args)
    return asyncio.run(serve(settings, practice))


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    overrides = {name: getattr(args, name, None) for name in ENV}
    overrides["config"] = overrides["config"] or str(EXAMPLE)
    overrides["data_dir"] = overrides["data_dir"] or "demo-data"
    settings = load_settings(overrides)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bookingbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("init", cmd_init, "write practice.toml and .env templates"),
        ("check", cmd_check, "validate the configuration, the token and every calendar"),
        ("run", cmd_run, "run the bot (long polling, or webhook when a URL is set)"),
        ("demo", cmd_demo, "run everything locally with a terminal chat instead of Telegram"),
        ("token-key", cmd_token_key, "print a new BOOKINGBOT_TOKEN_KEY for Google and Microsoft sign-ins"),
    ):
        p = sub.add_parser(name, help=help_text)
        _settings_args(p)
        p.set_defaults(func=func)
    report = sub.add_parser("report", help="write a partner's monthly settlement CSV")
    _settings_args(report)
    report.add_argument("--partner", required=True, help="the partner's id in the practice file")
    report.add_argument("--month", required=True, help="YYYY-MM, in the practice's time zone")
    report.add_argument("--out", help="the CSV file (default partner-<id>-<month>.csv)")
    report.set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Request URLs carry the bot token: keep the HTTP client's own logging quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except (SettingsError, ConfigError, CalendarUnavailable) as exc:
        print(f"bookingbot: cannot start:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
