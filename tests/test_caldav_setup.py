"""Connecting: the embedded server, credentials kept across restarts, and clear errors."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from caldav_bridge.client import CalDAVAuthError, CalDAVSetupError, CalendarNotFound, list_calendars
from caldav_bridge.embedded import EmbeddedCalDAV
from caldav_bridge.gateway import CalDAVGateway
from scheduling.calendar import CalendarUnavailable, EventSpec
from scheduling.config import Practice
from tests.fixtures.caldav import CalDAVServer, account_of, free_port, practice_for

ENV = "BOOKINGBOT_TEST_CALDAV_PASSWORD"


async def test_embedded_server_starts_and_reuses_credentials(tmp_path: Path, practice: Practice) -> None:
    emb = EmbeddedCalDAV(tmp_path, port=0)
    accounts = await emb.start(practice)
    try:
        assert set(accounts) == {"anna", "jonas"}
        creds = tmp_path / "radicale" / "credentials.json"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert json.loads(creds.read_text())["anna"] == accounts["anna"].password
        gw = CalDAVGateway(practice, accounts=accounts)
        await gw.start()
        start = datetime.now(UTC) + timedelta(days=2)
        event = EventSpec(
            "e1@bookingbot", start, start + timedelta(hours=1), "Europe/Warsaw", "s", "d", "l", "TENTATIVE", 0, 1
        )
        await gw.put("anna", event)
        await gw.close()
    finally:
        await emb.stop()

    again = EmbeddedCalDAV(tmp_path, port=0)
    accounts2 = await again.start(practice)
    try:
        assert accounts2["anna"].password == accounts["anna"].password
        assert await list_calendars(accounts2["anna"].url, "anna", accounts2["anna"].password) == [
            ("bookings", accounts2["anna"].calendar_url)
        ]
        gw = CalDAVGateway(practice, accounts=accounts2)
        await gw.start()
        busy = await gw.busy("anna", start - timedelta(hours=1), start + timedelta(hours=2))
        assert [b.uid for b in busy] == ["e1@bookingbot"]  # data survived the restart
        await gw.close()
        with pytest.raises(CalDAVAuthError, match="anna"):
            await list_calendars(accounts2["anna"].url, "anna", "wrong")
    finally:
        await again.stop()


async def test_wrong_password_is_a_clear_error(radicale_account: CalDAVServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "not-the-password")
    gw = CalDAVGateway(practice_for(radicale_account, password_env=ENV))
    with pytest.raises(CalDAVAuthError, match=r"refused the credentials of user 'alice'"):
        await gw.start()


async def test_password_from_environment(radicale_account: CalDAVServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, radicale_account.password)
    gw = CalDAVGateway(practice_for(radicale_account, password_env=ENV))
    await gw.start()
    assert gw.booking_calendar_url("ana") == radicale_account.calendar_url
    await gw.close()
    monkeypatch.delenv(ENV)
    with pytest.raises(CalDAVSetupError, match=ENV):
        await CalDAVGateway(practice_for(radicale_account, password_env=ENV)).start()


async def test_missing_calendar_lists_what_exists(caldav_server: CalDAVServer) -> None:
    practice = practice_for(caldav_server)
    wrong = account_of(caldav_server).__class__(
        caldav_server.url, caldav_server.username, caldav_server.password, "no-such-calendar"
    )
    gw = CalDAVGateway(practice, accounts={"ana": wrong})
    with pytest.raises(CalendarNotFound) as err:
        await gw.start()
    assert "'no-such-calendar' not found" in str(err.value)
    assert caldav_server.calendar in str(err.value)


async def test_busy_calendar_by_url_path(caldav_server: CalDAVServer) -> None:
    names = [n for n, _ in await list_calendars(caldav_server.url, caldav_server.username, caldav_server.password)]
    assert caldav_server.calendar in names
    acc = account_of(caldav_server).__class__(
        caldav_server.url, caldav_server.username, caldav_server.password, caldav_server.calendar_url
    )
    gw = CalDAVGateway(practice_for(caldav_server), accounts={"ana": acc})
    await gw.start()
    assert gw.booking_calendar_url("ana") == caldav_server.calendar_url
    await gw.close()


async def test_wrong_url_is_a_clear_error(radicale_account: CalDAVServer) -> None:
    acc = radicale_account
    with pytest.raises(CalDAVSetupError, match=r"not found|check the URL"):
        await list_calendars(acc.url + "nowhere/at/all/", acc.username, acc.password)


async def test_unreachable_url_names_it(caldav_server: CalDAVServer) -> None:
    url = f"http://127.0.0.1:{free_port()}/dav/"
    with pytest.raises(CalendarUnavailable, match=re.escape(url)):
        await list_calendars(url, caldav_server.username, caldav_server.password, request_timeout=2)
