"""`bookingbot check` on what loads fine but breaks a practice: each finding names its field by the item's id."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.check import run_check
from bot.cli import main
from bot.settings import ENV, Settings
from caldav_bridge.embedded import EmbeddedCalDAV
from scheduling.config import parse_practice
from scheduling.lint import practice_findings
from tests.fixtures.caldav import CalDAVServer, free_port
from tests.fixtures.practice import EXAMPLE

TODAY = date(2026, 12, 1)


def example(**changes: Any) -> dict[str, Any]:
    """The shipped example as data, with approvers, and the given changes to `practice`."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for n, spec in enumerate(data["specialists"]):
        spec["telegram_id"] = 1001 + n
    data["practice"].update(changes)
    return data


def findings(data: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    return {f.field: (f.never, f.message) for f in practice_findings(parse_practice(data), TODAY)}


def test_the_example_with_approvers_has_no_findings() -> None:
    assert findings(example()) == {}


def test_reminders_must_come_before_the_visit() -> None:
    found = findings(example(reminder_hours=[24, 0, -2]))
    assert set(found) == {"practice.reminder_hours[1]", "practice.reminder_hours[2]"}
    assert found["practice.reminder_hours[2]"][0] is True and "-2" in found["practice.reminder_hours[2]"][1]


def test_specialist_without_hours_or_with_notice_beyond_the_horizon() -> None:
    data = example()
    anna, jonas = data["specialists"]
    jonas["schedule"], jonas["exceptions"] = [], []
    anna["min_notice_hours"], anna["horizon_days"] = 72, 2
    found = findings(data)
    assert found["specialists[jonas].schedule"][0] is False
    assert found["specialists[anna].min_notice_hours"] == (
        True,
        "72 h of notice is more than the 2-day horizon (horizon_days): no time can ever be booked",
    )


def test_overlapping_windows_and_on_site_at_an_online_location() -> None:
    data = example()
    anna = data["specialists"][0]
    anna["schedule"].append({"weekday": "wed", "start": "16:00", "end": "18:00", "location": "online"})
    anna["schedule"][1]["channels"] = ["video", "on_site"]  # Monday at the online location
    found = findings(data)
    overlap = found["specialists[anna].schedule[4]"]
    assert overlap[0] is False and "wed 16:00-18:00 overlaps schedule[2] (09:00-17:00)" in overlap[1]
    assert found["specialists[anna].schedule[1].channels"][0] is True
    assert "'online', an online location" in found["specialists[anna].schedule[1].channels"][1]


def test_nobody_can_approve_unless_there_is_an_admin() -> None:
    data = example()
    data["specialists"][1]["telegram_id"] = 0
    assert findings(data)["specialists[jonas].telegram_id"][0] is True
    data["practice"]["admins"] = [42]
    assert findings(data) == {}


def test_public_holidays_offered_as_working_days_are_suggested_as_off() -> None:
    found = [f for f in practice_findings(parse_practice(example(country="PL")), TODAY) if not f.never]
    anna = [f.message for f in found if f.field == "specialists[anna].exceptions"]
    # Christmas Day 2026 is a Friday, anna's working day; Christmas Eve is already "off" in the file.
    assert any(m.startswith("2026-12-25 (Christmas Day) is a public holiday in PL") for m in anna), anna
    assert 'date = 2026-12-25, kind = "off"' in anna[0]
    assert not any("2026-12-24" in m for m in anna)
    assert findings(example()) == {}  # no country, no holidays


def test_a_country_without_known_holidays_is_named_once() -> None:
    found = practice_findings(parse_practice(example(country="XX")), TODAY)
    assert [(f.field, f.never) for f in found] == [("practice.country", False)]
    assert "no public holidays are known for XX" in found[0].message


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "practice.toml"
    path.write_text(text, encoding="utf-8")
    return path


def approved_example_text() -> str:
    ids = iter(["1001", "1002"])
    return re.sub(r"(?m)^telegram_id = 0", lambda _: f"telegram_id = {next(ids)}", EXAMPLE.read_text("utf-8"))


def free_settings(config: Path, data_dir: Path, **kw: Any) -> Settings:
    return Settings(config=config, data_dir=data_dir, listen=f"127.0.0.1:{free_port()}", caldav_port=free_port(), **kw)


async def test_check_marks_never_and_suspicious_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = approved_example_text().replace("reminder_hours = [24, 2]", "reminder_hours = [24, 0]")
    text = text.replace('language = "en" ', 'language = "xx" ')
    assert await run_check(free_settings(write(tmp_path, text), tmp_path / "data")) == 1
    out = capsys.readouterr().out
    assert "✘ practice.reminder_hours[1]: 0: a reminder goes out before the visit" in out
    assert "! practice.language: 'xx' has no catalog" in out
    assert "1 problem(s) found." in out  # a suspicious line is not a failure


async def test_ports_held_by_another_program(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, approved_example_text())
    settings = Settings(config=config, data_dir=tmp_path / "d", listen=f"127.0.0.1:{busy_port}", caldav_port=busy_port)
    assert await run_check(settings) == 1
    out = capsys.readouterr().out
    assert f"✘ BOOKINGBOT_LISTEN: port {busy_port} on 127.0.0.1 is in use by another program" in out
    assert f"✘ BOOKINGBOT_CALDAV_PORT: port {busy_port} on 127.0.0.1 is in use by another program" in out
    assert "refused" not in out


async def test_calendar_port_of_this_bookingbot_running_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, approved_example_text())
    data = tmp_path / "data"
    server = EmbeddedCalDAV(data, port=0)
    await server.start(parse_practice(tomllib.loads(config.read_text("utf-8"))))
    try:
        settings = Settings(config=config, data_dir=data, listen=f"127.0.0.1:{free_port()}", caldav_port=server.port)
        assert await run_check(settings) == 0
    finally:
        await server.stop()
    assert (
        f"✔ embedded calendar server: 127.0.0.1:{server.port} is in use by this bookingbot" in capsys.readouterr().out
    )


def with_caldav(url: str) -> str:
    table = f'[specialists.caldav]\nurl = "{url}"\nusername = "alice"\npassword_env = "BOOKINGBOT_TEST_FINDINGS_PW"\n\n'
    head, sep, rest = approved_example_text().partition('[[specialists]]\nid = "jonas"')
    return f"{head}{table}{sep}{rest}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("cloud.example.org/remote.php/dav", "is not a full address; write it with https:// in front"),
        ("http://127.0.0.1:{port}/dav/", "nothing answers on port {port} of 127.0.0.1; check the port in"),
        ("http://no-such-host.invalid/dav/", "the host 'no-such-host.invalid' is not found; check its spelling"),
    ],
)
async def test_caldav_address_mistakes_in_words(
    url: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("BOOKINGBOT_TEST_FINDINGS_PW", "pw")
    config = write(tmp_path, with_caldav(url.format(port=port)))
    assert await run_check(free_settings(config, tmp_path / "data")) == 1
    bad = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("✘")]
    assert len(bad) == 1 and bad[0].startswith("✘ specialists[anna].caldav.url: ")
    assert expected.format(port=port) in bad[0]


async def test_https_to_a_plain_http_port(
    tmp_path: Path, radicale_account: CalDAVServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKINGBOT_TEST_FINDINGS_PW", radicale_account.password)
    config = write(tmp_path, with_caldav(radicale_account.url.replace("http://", "https://")))
    assert await run_check(free_settings(config, tmp_path / "data")) == 1
    out = capsys.readouterr().out
    assert "does not answer https; check the port, or whether the server wants http://" in out


def test_unsupported_database_url_is_refused_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    url = "mysql://shop:s3cret@db.example.org/shop"
    assert main(["check", "--config", str(EXAMPLE), "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "BOOKINGBOT_DATABASE_URL: 'mysql' databases are not supported; use sqlite:///" in err
    assert "s3cret" not in err


@pytest.mark.postgres
async def test_postgresql_refusing_the_user_or_database_says_why(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy.engine import make_url

    config = write(tmp_path, approved_example_text())
    for url, reason in (
        (make_url(pg_url).set(username="nobody_here"), 'role "nobody_here" does not exist'),
        (make_url(pg_url).set(database="no_such_db"), 'database "no_such_db" does not exist'),
    ):
        settings = free_settings(config, tmp_path / "data", database_url=url.render_as_string(hide_password=False))
        assert await run_check(settings) == 1
        bad = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("✘")]
        assert len(bad) == 1 and f"the server says: {reason}" in bad[0]


def test_run_warns_loudly_about_specialists_nobody_can_approve(
    tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    # The shipped example has no telegram_id; the busy calendar port ends the run right after the warning.
    code = main(["run", "--token", "1:x", "--config", str(EXAMPLE), "--data-dir", str(tmp_path),
                 "--caldav-port", str(busy_port)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "WARNING: specialists[anna].telegram_id: nobody can approve their requests" in err
    assert "WARNING: specialists[jonas].telegram_id" in err
