"""The web endpoints against a real Runtime: SQLite, the session's Radicale and a real PTB Application."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import AppRunner, TCPSite
from icalendar import Calendar
from telegram import Update
from telegram.ext import Application, ApplicationBuilder

from bot.runtime import Runtime, start_runtime
from bot.settings import Settings
from bot.web import (
    FEED_KEY_FILE,
    RedactingAccessLogger,
    RefusalLog,
    feed_key,
    feed_token,
    feed_url,
    make_web_app,
)
from scheduling.booking import Request
from scheduling.model import Channel, Status
from tests.fixtures.caldav import CalDAVServer, RadicaleServer, free_port, practice_for

PASSWORD_ENV = "BOOKINGBOT_TEST_WEB_CALDAV_PASSWORD"
SECRET = "s3cret-Token_value-0123456789abcdefghij"  # Telegram's alphabet, 32 characters or more
HEALTH_TOKEN = "health-f0e1d2c3b4a5968778695a4b3c2d1e0f"
DETAIL = {"Authorization": f"Bearer {HEALTH_TOKEN}"}
WARSAW = ZoneInfo("Europe/Warsaw")
# The Wednesday before the spring DST change; the booking lands on the Monday after it.
NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
MONDAY_AFTER_DST = date(2026, 3, 30)


@dataclass
class Web:
    runtime: Runtime
    app: Application
    client: TestClient
    settings: Settings


@pytest.fixture
async def web(tmp_path: Path, radicale_account: CalDAVServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Web]:
    monkeypatch.setenv(PASSWORD_ENV, radicale_account.password)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'db' / 'bookingbot.sqlite3'}",
        webhook_url="https://bot.example.org/telegram/hook",
        webhook_secret=SECRET,
        health_token=HEALTH_TOKEN,
    )
    runtime = await start_runtime(
        settings, practice_for(radicale_account, password_env=PASSWORD_ENV), clock=lambda: NOW
    )
    # Never initialised: the webhook only needs its bot for parsing and its update queue.
    app = ApplicationBuilder().token("123456:TEST").updater(None).build()
    client = TestClient(TestServer(make_web_app(runtime, app, settings)))
    await client.start_server()
    try:
        yield Web(runtime, app, client, settings)
    finally:
        await client.close()
        await runtime.close()


async def book(runtime: Runtime) -> int:
    async with runtime.store.tx() as tx:
        client = await tx.upsert_client(4242, name="Zofia Testowa", phone="+48500100200")
    slots = await runtime.booking.day_slots("first", "centre", ["ana"], MONDAY_AFTER_DST)
    assert slots, "the fixture practice should have free time on that Monday"
    appt = await runtime.booking.request(Request(client.id, "first", "centre", "ana", Channel.ON_SITE, slots[0].start))
    return appt.id


async def test_health_ok_reports_outbox_and_calendars_without_personal_data(web: Web) -> None:
    resp = await web.client.get("/healthz", headers=DETAIL)
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ok",
        "database": "ok",
        "outbox_pending": 0,
        "calendars": {"ana": "ok"},
    }
    await book(web.runtime)
    resp = await web.client.get("/healthz", headers=DETAIL)
    body = await resp.text()
    assert resp.status == 200
    assert (await resp.json())["outbox_pending"] == 1
    assert "Zofia" not in body and "500100200" not in body


async def test_health_names_a_calendar_whose_writes_are_failing(web: Web, radicale_restartable: RadicaleServer) -> None:
    await book(web.runtime)
    radicale_restartable.stop()
    assert await web.runtime.worker.run_once() == 0
    resp = await web.client.get("/healthz", headers=DETAIL)
    # A calendar outage is not the bot's outage: requests are still taken and queued.
    assert resp.status == 200
    body = await resp.json()
    assert body["calendars"] == {"ana": "retrying writes"}
    assert body["outbox_pending"] == 1


async def test_health_is_degraded_once_writes_have_failed_past_the_alert_time(
    web: Web, radicale_restartable: RadicaleServer
) -> None:
    await book(web.runtime)
    radicale_restartable.stop()
    assert await web.runtime.worker.run_once() == 0
    web.runtime.booking.clock = lambda: NOW + timedelta(minutes=61)  # the default alert time is 60 minutes
    resp = await web.client.get("/healthz", headers=DETAIL)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "degraded"
    assert body["calendars"] == {"ana": f"writes failing since {NOW.isoformat()}"}


async def test_access_log_hides_feed_tokens(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    token = feed_token(feed_key(web.settings.data_dir), "ana")
    runner = AppRunner(make_web_app(web.runtime, web.app, web.settings), access_log_class=RedactingAccessLogger)
    await runner.setup()
    port = free_port()
    await TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/feeds/ana/{token}.ics") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "aiohttp.access"]
    assert logged == ["GET /feeds/ana/<token>.ics 200 " + logged[0].rsplit(" ", 1)[-1]]
    assert token not in caplog.text


async def test_health_503_when_the_database_is_gone(web: Web, tmp_path: Path) -> None:
    await web.runtime.engine.dispose()
    shutil.rmtree(tmp_path / "db")
    resp = await web.client.get("/healthz", headers=DETAIL)
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "error"
    assert body["database"].startswith("error"), body


async def test_health_shows_only_the_status_without_the_token(web: Web, radicale_restartable: RadicaleServer) -> None:
    await book(web.runtime)
    radicale_restartable.stop()
    assert await web.runtime.worker.run_once() == 0
    web.runtime.booking.clock = lambda: NOW + timedelta(minutes=61)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": HEALTH_TOKEN[:-1]}):
        resp = await web.client.get("/healthz", headers=headers)
        assert resp.status == 200
        assert await resp.json() == {"status": "degraded"}  # no specialist's id, no calendar's error
    resp = await web.client.get("/healthz", headers=DETAIL)
    assert (await resp.json())["calendars"] == {"ana": f"writes failing since {NOW.isoformat()}"}


async def test_health_without_a_token_set_shows_nobody_the_detail(web: Web) -> None:
    settings = replace(web.settings, health_token=None)
    client = TestClient(TestServer(make_web_app(web.runtime, web.app, settings)))
    await client.start_server()
    try:
        for headers in ({}, {"Authorization": "Bearer "}):
            resp = await client.get("/healthz", headers=headers)
            assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    finally:
        await client.close()


async def test_refused_webhook_posts_are_warned_about_once_a_minute(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = RefusalLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="bot.web"):
        for _ in range(500):  # a flood of forged posts
            refusals.refused()
        now[0] += 61
        refusals.refused()
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.web"]
    assert warnings == [
        "webhook: refused a request without the right secret token",
        "webhook: refused 500 more requests without the right secret token since the last warning",
    ]


async def test_a_short_webhook_secret_is_refused(web: Web) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        make_web_app(web.runtime, web.app, replace(web.settings, webhook_secret="s3cret-value"))


async def test_webhook_refuses_a_wrong_or_missing_secret(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    update = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}}
    with caplog.at_level(logging.WARNING, logger="bot.web"):
        for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
            resp = await web.client.post("/telegram/hook", json=update, headers=headers)
            assert resp.status == 403
    assert web.app.update_queue.empty()
    assert len([r for r in caplog.records if r.name == "bot.web"]) == 1  # the rest wait for the next minute


async def test_webhook_queues_an_update_with_the_right_secret(web: Web) -> None:
    update = {
        "update_id": 7,
        "message": {
            "message_id": 1,
            "date": 1_774_440_000,
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "T"},
            "text": "/start",
        },
    }
    resp = await web.client.post("/telegram/hook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert resp.status == 200
    got = await asyncio.wait_for(web.app.update_queue.get(), 1)
    assert isinstance(got, Update)
    assert got.update_id == 7
    assert got.effective_message is not None and got.effective_message.text == "/start"


async def test_webhook_refuses_garbage_and_oversized_bodies(web: Web) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for body in (b"not json", b"[1, 2]", b'{"update_id": "x"}', b"\xff\xfe"):
        resp = await web.client.post("/telegram/hook", data=body, headers=headers)
        assert resp.status == 400, body
    resp = await web.client.post("/telegram/hook", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=headers)
    assert resp.status == 413
    assert web.app.update_queue.empty()


async def test_feed_key_is_created_once_and_private(web: Web) -> None:
    path = web.settings.data_dir / FEED_KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = feed_key(web.settings.data_dir)
    assert feed_key(web.settings.data_dir) == key
    token = feed_token(key, "ana")
    assert len(token) == 32 and token != feed_token(key, "bob")
    assert token != feed_token(os.urandom(32), "ana")


async def test_feed_404_for_wrong_token_or_unknown_specialist(web: Web) -> None:
    key = feed_key(web.settings.data_dir)
    wrong = await web.client.get(f"/feeds/ana/{'0' * 32}.ics")
    unknown = await web.client.get(f"/feeds/bob/{feed_token(key, 'bob')}.ics")
    assert wrong.status == unknown.status == 404
    assert await wrong.text() == await unknown.text()
    right = await web.client.get(f"/feeds/ana/{feed_token(key, 'ana')}.ics")
    assert right.status == 200


async def test_feed_lists_a_requested_appointment_as_tentative_in_local_time(web: Web) -> None:
    appt_id = await book(web.runtime)
    url = feed_url(web.settings, feed_key(web.settings.data_dir), "ana")
    assert url.startswith("https://bot.example.org/feeds/ana/")
    path = url.removeprefix("https://bot.example.org")
    resp = await web.client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/calendar"
    cal = Calendar.from_ical(await resp.read())
    events = list(cal.walk("VEVENT"))
    assert len(events) == 1
    ev = events[0]
    assert str(ev["X-BOOKINGBOT-ID"]) == str(appt_id)
    assert str(ev["STATUS"]) == "TENTATIVE"
    start = ev.decoded("DTSTART")
    assert start.astimezone(WARSAW).hour == 9
    # After the spring change Warsaw is UTC+2: 09:00 local is 07:00 UTC.
    assert start.tzinfo is not None and start.astimezone(WARSAW).date() == MONDAY_AFTER_DST
    assert start.utcoffset() == timedelta(hours=2)
    assert ev["DTSTART"].params["TZID"] == "Europe/Warsaw"
    assert any(c.name == "VTIMEZONE" for c in cal.subcomponents)


async def test_feed_leaves_out_declined_appointments(web: Web) -> None:
    appt_id = await book(web.runtime)
    async with web.runtime.store.tx() as tx:
        appt = await tx.get_appointment(appt_id)
        assert appt is not None
        await tx.transition(appt, Status.DECLINED, actor="test", at=NOW)
    path = f"/feeds/ana/{feed_token(feed_key(web.settings.data_dir), 'ana')}.ics"
    cal = Calendar.from_ical(await (await web.client.get(path)).read())
    assert list(cal.walk("VEVENT")) == []
