"""End to end: a specialist signs in to Google or Microsoft from Telegram, a client books, the calendar follows."""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from icalendar import Calendar

from providers.oauth import TOKEN_KEY_ENV, TokenVault
from scheduling.calendar import CalendarUnavailable
from scheduling.config import Practice, parse_practice
from tests.fixtures.bot import ADMIN, ANNA, JONAS, Bot, running_bot
from tests.fixtures.practice import EXAMPLE
from tests.fixtures.providers import GoogleStandIn, GraphStandIn
from tests.test_e2e_booking import _appointment, book_first_consultation
from tests.test_e2e_calendar_edits import later
from tgemu import BotApiEmulator, TelegramUser

# Wednesday 2 December 2026, 09:00 in Warsaw: the slot book_first_consultation picks.
WED_NINE = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def practice_with(kind: str) -> Practice:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["practice"]["admins"] = [ADMIN]
    data["specialists"][0].update(telegram_id=ANNA, calendar=kind)
    data["specialists"][1]["telegram_id"] = JONAS
    return parse_practice(data)


@pytest.fixture
def provider_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv(TOKEN_KEY_ENV, TokenVault.new_key())
    yield monkeypatch


@pytest_asyncio.fixture
async def google_bot(
    tmp_path: Path, emulator: BotApiEmulator, google: GoogleStandIn, provider_env: pytest.MonkeyPatch
) -> AsyncIterator[Bot]:
    for name, value in google.env.items():
        provider_env.setenv(name, value)
    async with running_bot(tmp_path, emulator, practice=practice_with("google")) as b:
        yield b


@pytest_asyncio.fixture
async def microsoft_bot(
    tmp_path: Path, emulator: BotApiEmulator, graph: GraphStandIn, provider_env: pytest.MonkeyPatch
) -> AsyncIterator[Bot]:
    for name, value in graph.env.items():
        provider_env.setenv(name, value)
    async with running_bot(tmp_path, emulator, practice=practice_with("microsoft")) as b:
        yield b


async def connect(anna: TelegramUser, provider: str, calendar: str) -> None:
    """Anna sends /connect, signs in in her browser, pastes the address and picks her calendar."""
    await anna.send(f"/connect {provider}")
    [[button]] = anna.last.inline_keyboard or [[{}]]
    assert "copy that page's whole address" in anna.last.text.lower()
    async with httpx.AsyncClient() as http:
        consent = await http.get(button["url"], follow_redirects=False)
    await anna.send(consent.headers["location"])
    assert "Which calendar should bookings go to?" in anna.last.text
    await anna.tap(calendar)
    assert "Which calendars block your time?" in anna.last.text
    await anna.tap("Done")
    assert anna.last.text.startswith("Connected. Bookings go to")


async def until(check: Callable[[], object], what: str, tries: int = 100) -> None:
    """Wait for the outbox (running in the background) to have written what `check` looks for."""
    for _ in range(tries):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not written in time: {what}")


async def google_has(http: httpx.AsyncClient, url: str, status: str) -> bool:
    """Whether the event in Google (read straight from the stand-in's storage) has this STATUS."""
    got = await http.get(url)
    return got.status_code == 200 and str(Calendar.from_ical(got.text).walk("VEVENT")[0]["STATUS"]) == status


async def test_a_google_specialist_signs_in_and_takes_bookings(google_bot: Bot, google: GoogleStandIn) -> None:
    bot, anna = google_bot, google_bot.anna
    await anna.send("/start")
    client = bot.user(8101, "Client")
    await client.send("/start")
    await client.tap("City centre office")
    await client.tap("Individual")
    await client.tap("First consultation")
    await client.tap("Anna Kowalska")
    assert "calendar cannot be read right now" in client.last.text  # not signed in: closed, never "all free"

    await connect(anna, "google", "Anna")
    await client.send("/cancel")
    await book_first_consultation(client, note=None)
    appt = await _appointment(bot, 8101)
    own = next(iter(google.calendars))
    event_url = f"{google.radicale_url(own)}{appt.uid}.ics"
    async with httpx.AsyncClient(auth=google.radicale_auth) as http:
        await until(lambda: google_has(http, event_url, "TENTATIVE"), "the tentative event")
        written = Calendar.from_ical((await http.get(event_url)).text).walk("VEVENT")[0]
        assert written.decoded("DTSTART") == WED_NINE.astimezone(written.decoded("DTSTART").tzinfo)
        await anna.tap("Approve")
        await until(lambda: google_has(http, event_url, "CONFIRMED"), "the confirmed event")
        got = await http.get(event_url)

        # Anna drags the visit two hours later in Google Calendar.
        cal = Calendar.from_ical(got.text)
        later(hours=2)(cal.walk("VEVENT")[0])
        put = await http.put(
            event_url, content=cal.to_ical(), headers={"If-Match": got.headers["ETag"], "Content-Type": "text/calendar"}
        )
        put.raise_for_status()
    await bot.sweep()
    assert (await _appointment(bot, 8101)).start == WED_NINE + timedelta(hours=2)
    assert any("moved your appointment" in m.text and "11:00" in m.text for m in client.messages)


async def test_a_microsoft_specialist_signs_in_and_takes_bookings(microsoft_bot: Bot, graph: GraphStandIn) -> None:
    bot, anna = microsoft_bot, microsoft_bot.anna
    await anna.send("/start")
    await connect(anna, "microsoft", "Calendar")
    client = bot.user(8102, "Client")
    await book_first_consultation(client, note=None)
    await until(lambda: len(graph.live("AAMkCal1")) == 1, "the tentative event")
    [written] = graph.live("AAMkCal1")
    assert written.data["showAs"] == "tentative" and written.data["start"]["dateTime"].startswith("2026-12-02T08:00")
    await anna.tap("Approve")
    await until(lambda: written.data["showAs"] == "busy", "the confirmed event")

    graph.edit(
        written.id,
        start={"dateTime": "2026-12-02T10:00:00.0000000", "timeZone": "UTC"},
        end={"dateTime": "2026-12-02T10:50:00.0000000", "timeZone": "UTC"},
    )
    await bot.sweep()
    assert (await _appointment(bot, 8102)).start == WED_NINE + timedelta(hours=2)
    assert any("moved your appointment" in m.text and "11:00" in m.text for m in client.messages)


async def test_a_revoked_sign_in_is_told_once(microsoft_bot: Bot, graph: GraphStandIn) -> None:
    bot, anna = microsoft_bot, microsoft_bot.anna
    await anna.send("/start")
    await connect(anna, "microsoft", "Calendar")
    admin = bot.user(ADMIN, "Admin")
    await admin.send("/start")
    client = bot.user(8103, "Client")
    await book_first_consultation(client, note=None)
    await until(lambda: len(graph.live()) == 1, "the tentative event")
    graph.oauth.revoke()  # Anna removed the app's access in her Microsoft account
    await anna.tap("Approve")
    for _ in range(3):
        bot.clock.advance(hours=1)
        await bot.drain_outbox()
    await admin.wait_for(lambda u: any("access was withdrawn" in m.text for m in u.messages))
    assert len([m for m in anna.messages if "access was withdrawn" in m.text]) == 1
    assert len([m for m in admin.messages if "access was withdrawn" in m.text]) == 1
    assert (await _appointment(bot, 8103)).status == "confirmed"  # the decision stands; the write waits


async def test_connect_is_for_signed_in_calendars_only(microsoft_bot: Bot) -> None:
    jonas = microsoft_bot.user(JONAS, "Jonas")
    await jonas.send("/connect google")
    assert "set up in the practice file" in jonas.last.text
    stranger = microsoft_bot.user(8104, "Someone")
    await stranger.send("/connect microsoft")
    assert "Only the practice's specialists" in stranger.last.text
    await microsoft_bot.anna.send("/connect google")
    assert "/connect microsoft" in microsoft_bot.anna.last.text
    await microsoft_bot.anna.send("http://127.0.0.1:53682/?state=forged&code=stolen")
    assert "Signing in did not work" in microsoft_bot.anna.last.text


async def test_health_and_check_show_the_sign_in(
    microsoft_bot: Bot, graph: GraphStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.check import Report, check_connection
    from bot.web import make_web_app

    runtime = microsoft_bot.runtime
    token = "health-token-of-this-test-0123456789abcdef"
    settings = replace(runtime.settings, health_token=token)
    web = TestClient(TestServer(make_web_app(runtime, microsoft_bot.app, settings)))
    await web.start_server()
    spec = runtime.practice.specialist_by_id["anna"]
    try:
        health = await (await web.get("/healthz", headers={"Authorization": f"Bearer {token}"})).json()
        assert health["status"] == "degraded" and health["calendars"]["anna"] == "not signed in"
        report = Report()
        await check_connection(report, runtime.settings, runtime.practice, spec)
        assert report.failed == 1 and "/connect microsoft" in capsys.readouterr().out

        await microsoft_bot.anna.send("/start")
        await connect(microsoft_bot.anna, "microsoft", "Calendar")
        health = await (await web.get("/healthz", headers={"Authorization": f"Bearer {token}"})).json()
        assert health["status"] == "ok" and health["calendars"]["anna"] == "ok"
        await check_connection(report, runtime.settings, runtime.practice, spec)
        out = capsys.readouterr().out
        assert report.failed == 1 and f"Microsoft calendar of {graph.user}, token valid" in out
        assert "bookings go to 'Calendar'" in out

        graph.oauth.revoke()
        await check_connection(report, runtime.settings, runtime.practice, spec)
        assert report.failed == 2 and "does not work" in capsys.readouterr().out
        now = microsoft_bot.clock()
        with pytest.raises(CalendarUnavailable):  # the bot finds out on its next read
            await runtime.calendars.busy("anna", now, now + timedelta(days=1), fresh=True)
        health = await (await web.get("/healthz", headers={"Authorization": f"Bearer {token}"})).json()
        assert health["status"] == "degraded" and health["calendars"]["anna"] == "revoked"
    finally:
        await web.close()


async def test_the_browser_comes_back_to_the_bots_web_address(microsoft_bot: Bot) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web import make_web_app

    runtime, anna = microsoft_bot.runtime, microsoft_bot.anna
    web = TestClient(TestServer(make_web_app(runtime, microsoft_bot.app, runtime.settings)))
    await web.start_server()
    try:
        assert runtime.connections.callback_url is None  # no public address in the tests' settings
        runtime.connections.callback_url = str(web.make_url("/oauth/callback"))
        await anna.send("/start")
        await anna.send("/connect")
        assert "copy that page's whole address" not in anna.last.text.lower()
        [[button]] = anna.last.inline_keyboard or [[{}]]
        async with httpx.AsyncClient() as http:
            page = await http.get(button["url"], follow_redirects=True)
        assert page.status_code == 200 and "Go back to Telegram" in page.text
        await anna.wait_for(lambda u: "Which calendar should bookings go to?" in u.last.text)
        async with httpx.AsyncClient() as http:
            again = await http.get(str(page.url))  # the same code a second time
        assert again.status_code == 400
    finally:
        await web.close()
