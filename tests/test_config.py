"""The practice file: the shipped example loads, and every mistake is reported with its exact field."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduling.config import ConfigError, Practice, load_practice, parse_practice
from scheduling.model import Channel
from tests.fixtures.practice import EXAMPLE


@pytest.fixture
def raw() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def errors_after(raw: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> list[str]:
    data = copy.deepcopy(raw)
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_practice(data)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def test_example_loads(practice: Practice) -> None:
    assert [loc.id for loc in practice.locations] == ["centre", "online"]
    assert set(practice.service_by_id) == {"first", "therapy", "couples", "chat"}
    anna = practice.specialist_by_id["anna"]
    assert anna.schedule[0].start == time(9) and anna.schedule[0].end == time(13)
    assert anna.schedule[1].channels == [Channel.VIDEO]
    assert anna.exceptions[0].date == date(2026, 12, 24) and anna.exceptions[0].kind == "off"
    assert practice.zone("online") == ZoneInfo("Europe/Warsaw")
    assert practice.service_by_id["therapy"].full_hours_only
    assert [s.id for s in practice.specialists_for("chat", "online")] == ["jonas"]
    assert practice.categories() == ["Individual", "Couples and family"]


def test_parse_matches_load(raw: dict[str, Any], practice: Practice) -> None:
    assert parse_practice(raw) == practice


def test_bad_time_names_exact_field(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["specialists"][1]["schedule"][0].update(end="25:00"))
    assert errors == ["specialists[1].schedule[0].end: 25:00 is not a time of day (use HH:MM)"]


def test_midnight_end_is_accepted(raw: dict[str, Any]) -> None:
    raw["specialists"][0]["schedule"][0]["end"] = "24:00"
    assert parse_practice(raw).specialists[0].schedule[0].end == time.max


def test_end_before_start(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["specialists"][0]["schedule"][2].update(end="08:00"))
    assert errors == ["specialists[0].schedule[2]: end 08:00 is not after start 09:00"]


def test_exception_end_before_start(raw: dict[str, Any]) -> None:
    def change(d: dict[str, Any]) -> None:
        d["specialists"][0]["exceptions"][1].update(start="15:00", end="11:00")

    assert errors_after(raw, change) == ["specialists[0].exceptions[1]: end 11:00 is not after start 15:00"]


def test_extra_hours_need_a_location(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["specialists"][0]["exceptions"][1].pop("location"))
    assert errors == ["specialists[0].exceptions[1]: extra hours need start, end and location"]


def test_unknown_keys_are_errors(raw: dict[str, Any]) -> None:
    def change(d: dict[str, Any]) -> None:
        d["services"][2]["durration"] = 50
        d["practice"]["colour"] = "blue"

    assert sorted(errors_after(raw, change)) == [
        "practice.colour: unknown key (check the spelling)",
        "services[2].durration: unknown key (check the spelling)",
    ]


def test_missing_required_field(raw: dict[str, Any]) -> None:
    assert errors_after(raw, lambda d: d["services"][0].pop("duration")) == ["services[0].duration: required"]


@pytest.mark.parametrize("section", ["locations", "services", "specialists"])
def test_duplicate_ids(raw: dict[str, Any], section: str) -> None:
    first_id = raw[section][0]["id"]
    errors = errors_after(raw, lambda d: d[section].append(copy.deepcopy(d[section][0])))
    index = len(raw[section])
    assert errors == [f"{section}[{index}].id: {first_id!r} is used twice"]


def test_dangling_service(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["specialists"][1]["services"].append("yoga"))
    assert errors == ["specialists[1].services[3]: no service with id 'yoga'"]


def test_dangling_locations(raw: dict[str, Any]) -> None:
    def change(d: dict[str, Any]) -> None:
        d["specialists"][0]["schedule"][3]["location"] = "harbour"
        d["specialists"][0]["exceptions"][1]["location"] = "annex"

    assert errors_after(raw, change) == [
        "specialists[0].schedule[3].location: no location with id 'harbour'",
        "specialists[0].exceptions[1].location: no location with id 'annex'",
    ]


def test_bad_time_zone(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["locations"][1].update(timezone="Europe/Atlantis"))
    assert errors == ["locations[1].timezone: Europe/Atlantis is not a known time zone (e.g. Europe/Warsaw)"]


def test_location_zone_overrides_practice_zone(raw: dict[str, Any]) -> None:
    raw["locations"][1]["timezone"] = "Europe/Vilnius"
    practice = parse_practice(raw)
    assert practice.zone("online") == ZoneInfo("Europe/Vilnius")
    assert practice.zone("centre") == ZoneInfo("Europe/Warsaw")


def test_bad_channel_and_weekday(raw: dict[str, Any]) -> None:
    def change(d: dict[str, Any]) -> None:
        d["specialists"][0]["schedule"][0]["weekday"] = "monday"
        d["services"][0]["channels"] = ["fax"]

    errors = errors_after(raw, change)
    assert len(errors) == 2
    assert any(e.startswith("specialists[0].schedule[0].weekday: ") for e in errors)
    assert any(e.startswith("services[0].channels[0]: ") for e in errors)


def test_caldav_url_needs_password_env(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["specialists"][1].update(caldav={"url": "https://dav.example.org/"}))
    assert errors == ["specialists[1].caldav.password_env: name the environment variable holding the password"]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "practice.toml"
    with pytest.raises(ConfigError) as info:
        load_practice(missing)
    assert info.value.errors == [f"{missing}: file not found (create one with `bookingbot init`)"]


def test_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "practice.toml"
    bad.write_text('[practice]\nname = "unterminated\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_practice(bad)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith(f"{bad}: not valid TOML: ")


def test_start_of_24_00_is_refused(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["specialists"][0]["schedule"][0].update(start="24:00"))
    assert errors == ["specialists[0].schedule[0]: start 24:00 is the end of the day, not a start"]


def test_service_without_channels_is_refused(raw: dict[str, Any]) -> None:
    errors = errors_after(raw, lambda d: d["services"][0].update(channels=[]))
    assert errors == ["services[0].channels: List should have at least 1 item after validation, not 0"]
