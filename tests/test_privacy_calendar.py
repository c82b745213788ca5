"""What calendars and feeds carry about clients: the minimum by default, more only when the practice chooses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from bot.calendar_text import event_for
from bot.cli import main
from bot.web import feed_key, feed_token
from scheduling.config import Practice
from scheduling.db import AppointmentRow, ClientRow
from scheduling.model import Status
from scheduling.privacy import initials
from tests.fixtures.bot import e2e_practice
from tests.fixtures.practice import EXAMPLE
from tests.test_web import Web, book, web  # noqa: F401 (the fixture)

START = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
NAME, PHONE, EMAIL, NOTE = "Jan Nowak", "+48601234567", "jan@example.org", "Panic attacks since May"


def _visit(practice: Practice) -> AppointmentRow:
    client = ClientRow(id=1, name=NAME, phone=PHONE, email=EMAIL)
    return AppointmentRow(
        id=7,
        uid="u7@bookingbot",
        client=client,
        client_id=1,
        specialist_id="anna",
        service_id="first",
        location_id="centre",
        channel="on_site",
        start=START,
        end=START + timedelta(minutes=50),
        status=Status.CONFIRMED,
        note=NOTE,
        sequence=0,
    )


def _text(practice: Practice) -> str:
    appt = _visit(practice)
    spec = event_for(practice, appt, appt.client)
    return f"{spec.summary}\n{spec.description}\n{spec.location}"


def _privacy(section: dict[str, Any], anna: dict[str, Any] | None = None) -> Practice:
    def edit(data: dict[str, Any]) -> None:
        data["privacy"] = section
        if anna is not None:
            data["specialists"][0]["privacy"] = anna

    return e2e_practice(edit)


def test_initials() -> None:
    assert initials("Jan Maria Nowak") == "J. M. N."
    assert initials("anna kowalska-nowak") == "A. K. N."
    assert initials("  ") is None and initials(None) is None


def test_by_default_an_event_carries_the_service_and_initials_only() -> None:
    text = _text(e2e_practice())
    assert text.splitlines()[0] == "First consultation: J. N."
    for secret in (NAME, "Nowak", PHONE, EMAIL, NOTE):
        assert secret not in text


def test_name_adds_the_name_and_full_adds_contact_and_note() -> None:
    named = _text(_privacy({"calendar_detail": "name"}))
    assert named.splitlines()[0] == f"First consultation: {NAME}"
    assert PHONE not in named and EMAIL not in named and NOTE not in named
    full = _text(_privacy({"calendar_detail": "full"}))
    assert all(x in full for x in (NAME, PHONE, EMAIL, NOTE))


def test_a_specialist_may_choose_for_their_own_calendar() -> None:
    practice = _privacy({"calendar_detail": "full"}, anna={"calendar_detail": "minimal"})
    assert NAME not in _text(practice) and NOTE not in _text(practice)
    practice = _privacy({}, anna={"calendar_detail": "name"})
    assert NAME in _text(practice) and PHONE not in _text(practice)


def test_an_unknown_detail_level_is_refused_with_the_field_named() -> None:
    from scheduling.config import ConfigError

    with pytest.raises(ConfigError, match=r"privacy\.calendar_detail"):
        _privacy({"calendar_detail": "everything"})


async def _feed_events(site: Web, generation: int = 0) -> tuple[int, list[Any]]:
    token = feed_token(feed_key(site.settings.data_dir), "ana", generation)
    resp = await site.client.get(f"/feeds/ana/{token}.ics")
    if resp.status != 200:
        return resp.status, []
    return 200, list(Calendar.from_ical(await resp.read()).walk("VEVENT"))


async def test_the_feed_carries_initials_only_by_default(web: Web) -> None:  # noqa: F811
    await book(web.runtime)
    status, (event,) = await _feed_events(web)
    assert status == 200
    text = event.to_ical().decode()
    assert str(event["SUMMARY"]).endswith(": Z. T.")
    assert "Zofia" not in text and "Testowa" not in text and "500100200" not in text


async def test_feed_rotate_retires_the_old_address(web: Web) -> None:  # noqa: F811
    await book(web.runtime)
    async with web.runtime.store.tx() as tx:
        assert await tx.rotate_feed("ana", datetime.now(UTC)) == 1
    assert (await _feed_events(web, 0))[0] == 404
    status, events = await _feed_events(web, 1)
    assert status == 200 and len(events) == 1


def test_bookingbot_feed_rotate_prints_the_new_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    args = ["--config", str(EXAMPLE), "--data-dir", str(data), "--public-url", "https://bot.example.org"]
    assert main(["feed", "rotate", "anna", *args]) == 0
    key = feed_key(data)
    first = capsys.readouterr().out
    assert f"https://bot.example.org/feeds/anna/{feed_token(key, 'anna', 1)}.ics" in first
    assert feed_token(key, "anna", 0) not in first
    assert main(["feed", "rotate", "anna", *args]) == 0
    assert feed_token(key, "anna", 2) in capsys.readouterr().out
    assert main(["feed", "rotate", "nobody", *args]) == 2
    assert "no specialist 'nobody'" in capsys.readouterr().err
