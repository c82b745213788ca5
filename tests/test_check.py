"""`bookingbot check` against real parts: the shipped example, the Bot API emulator and Radicale."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.check import run_check
from bot.settings import Settings
from tests.fixtures.caldav import CalDAVServer, free_port
from tests.fixtures.practice import EXAMPLE
from tgemu import BotApiEmulator

TOKEN = "123456789:" + "AAFake_token-for-tests-only-0123456789"
PASSWORD_ENV = "BOOKINGBOT_TEST_CHECK_CALDAV_PASSWORD"


def toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def example_with(tmp_path: Path, *, telegram_ids: bool = True, caldav: dict[str, object] | None = None) -> Path:
    """The shipped example with approvers filled in and, optionally, an external calendar for anna."""
    text = EXAMPLE.read_text(encoding="utf-8")
    if telegram_ids:
        ids = iter(["1001", "1002"])
        text = re.sub(r"(?m)^telegram_id = 0", lambda _: f"telegram_id = {next(ids)}", text)
    if caldav is not None:
        table = "".join(f"{k} = {toml_value(v)}\n" for k, v in caldav.items())
        # The section must follow anna's keys, before the next [[specialists]].
        head, sep, rest = text.partition('[[specialists]]\nid = "jonas"')
        text = f"{head}[specialists.caldav]\n{table}\n{sep}{rest}"
    path = tmp_path / "practice.toml"
    path.write_text(text, encoding="utf-8")
    tomllib.loads(text)
    return path


def lines(out: str, mark: str) -> list[str]:
    return [ln.strip() for ln in out.splitlines() if ln.strip().startswith(mark)]


@pytest.fixture(autouse=True)
def _default_ports_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this machine runs on 8080 or 5232 must not change these verdicts (ports: test_check_findings.py)."""
    monkeypatch.setattr("bot.check.port_in_use", lambda host, port: False)


@pytest_asyncio.fixture
async def bot_api() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(token=TOKEN) as server:
        yield server


async def test_example_without_token_is_fine_and_says_what_was_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(config=example_with(tmp_path), data_dir=tmp_path / "data")
    assert await run_check(settings) == 0
    out = capsys.readouterr().out
    assert lines(out, "✘") == []
    assert "– Telegram token: not checked: no token" in out
    assert "✔ specialist anna: embedded calendar" in out
    assert "✔ specialist jonas: embedded calendar" in out
    assert re.search(r"anna: http://127\.0\.0\.1:8080/feeds/anna/[0-9a-f]{32}\.ics", out)
    assert "– e-mail: off (BOOKINGBOT_SMTP_HOST not set), nothing is e-mailed to clients" in out
    assert out.rstrip().endswith("All good.")


async def test_an_smtp_server_that_does_not_answer_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        config=example_with(tmp_path),
        data_dir=tmp_path / "data",
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_security="none",
        smtp_from="bot@example.org",
    )
    assert await run_check(settings) == 1
    (bad,) = lines(capsys.readouterr().out, "✘")
    assert "BOOKINGBOT_SMTP_HOST" in bad and "refused or did not answer" in bad


async def test_shipped_example_asks_for_approvers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(config=EXAMPLE, data_dir=tmp_path / "data")
    assert await run_check(settings) == 1
    bad = lines(capsys.readouterr().out, "✘")
    assert len(bad) == 2
    assert all("telegram_id" in ln for ln in bad)


async def test_broken_practice_file_names_every_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = example_with(tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8")
        .replace("duration = 50 ", "duraton = 50 ", 1)
        .replace('"Europe/Warsaw"', '"Europe/Warsow"', 1),
        encoding="utf-8",
    )
    assert await run_check(Settings(config=path, data_dir=tmp_path / "data")) == 1
    out = capsys.readouterr().out
    bad = "\n".join(lines(out, "✘"))
    assert "practice.timezone" in bad
    assert "services[0].duraton: unknown key" in bad
    assert "services[0].duration: required" in bad
    assert "All good." not in out
    assert "3 problem(s) found." in out


async def test_token_checked_with_get_me_and_never_printed(
    tmp_path: Path, bot_api: BotApiEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    api = f"http://127.0.0.1:{bot_api.port}"
    good = Settings(token=TOKEN, api_url=api, config=example_with(tmp_path), data_dir=tmp_path / "data")
    assert await run_check(good) == 0
    out = capsys.readouterr().out
    assert "✔ Telegram token:" in out and "@bookingbot_test_bot" in out
    wrong_token = TOKEN[:-1] + "X"
    wrong = Settings(token=wrong_token, api_url=api, config=good.config, data_dir=good.data_dir)
    assert await run_check(wrong) == 1
    out += capsys.readouterr().out
    assert "✘ BOOKINGBOT_TELEGRAM_TOKEN:" in out and "refused the token" in out
    assert TOKEN not in out and wrong_token not in out and TOKEN.split(":")[1] not in out


async def test_unreachable_bot_api_and_malformed_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = example_with(tmp_path)
    down = Settings(token=TOKEN, api_url=f"http://127.0.0.1:{free_port()}", config=config, data_dir=tmp_path)
    assert await run_check(down) == 1
    out = capsys.readouterr().out
    assert "✘ Telegram token: cannot reach" in out
    assert await run_check(Settings(token="12345", config=config, data_dir=tmp_path)) == 1
    assert "does not look like a bot token" in capsys.readouterr().out


async def test_webhook_secret_too_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        config=example_with(tmp_path),
        data_dir=tmp_path,
        webhook_url="https://bot.example.org/hook",
        webhook_secret="s3cret-value",
    )
    assert await run_check(settings) == 1
    out = capsys.readouterr().out
    assert "✘ BOOKINGBOT_WEBHOOK_SECRET: at least 32 characters; make one with `openssl rand -hex 32`" in out
    assert "s3cret-value" not in out


async def test_webhook_secret_with_forbidden_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        config=example_with(tmp_path),
        data_dir=tmp_path,
        webhook_url="https://bot.example.org/hook",
        webhook_secret="has spaces!",
    )
    assert await run_check(settings) == 1
    out = capsys.readouterr().out
    assert "✘ BOOKINGBOT_WEBHOOK_SECRET:" in out
    assert "has spaces!" not in out
    assert "https://bot.example.org/feeds/anna/" in out


async def test_caldav_account_lists_calendars_and_finds_booking_and_busy(
    tmp_path: Path,
    radicale_account: CalDAVServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, radicale_account.password)
    caldav = {
        "url": radicale_account.url,
        "username": radicale_account.username,
        "password_env": PASSWORD_ENV,
        "booking_calendar": radicale_account.calendar,
        "busy_calendars": ["no-such-calendar"],
    }
    settings = Settings(config=example_with(tmp_path, caldav=caldav), data_dir=tmp_path)
    assert await run_check(settings) == 1
    out = capsys.readouterr().out
    assert f"✔ specialist anna: CalDAV user 'alice' at {radicale_account.url}: connected" in out
    assert repr(radicale_account.calendar) in out
    assert f"✔ booking calendar {radicale_account.calendar!r}: {radicale_account.calendar_url}" in out
    assert lines(out, "✘") == [
        "✘ specialist anna: busy calendar 'no-such-calendar' not found; create it in the calendar app "
        "or set caldav.busy_calendars to one of the calendars found"
    ]
    assert radicale_account.password not in out


async def test_caldav_wrong_password_names_the_account(
    tmp_path: Path,
    radicale_account: CalDAVServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    caldav = {
        "url": radicale_account.url,
        "username": radicale_account.username,
        "password_env": PASSWORD_ENV,
        "booking_calendar": radicale_account.calendar,
    }
    settings = Settings(config=example_with(tmp_path, caldav=caldav), data_dir=tmp_path)
    assert await run_check(settings) == 1
    out = capsys.readouterr().out
    bad = lines(out, "✘")
    assert len(bad) == 1
    assert f"specialist anna: CalDAV user 'alice' at {radicale_account.url}" in bad[0]
    assert "refused the login" in bad[0] and PASSWORD_ENV in bad[0]
    assert "not-the-password" not in out
    assert "✔ specialist jonas: embedded calendar" in out


async def test_caldav_password_variable_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    caldav = {"url": "http://127.0.0.1:1/", "username": "anna", "password_env": PASSWORD_ENV}
    settings = Settings(config=example_with(tmp_path, caldav=caldav), data_dir=tmp_path)
    assert await run_check(settings) == 1
    bad = lines(capsys.readouterr().out, "✘")
    assert len(bad) == 1 and PASSWORD_ENV in bad[0] and "not set" in bad[0]
