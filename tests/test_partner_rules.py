"""Partner rules without I/O: configuration, windows by audience, the partner's notice, weekly supply, `check`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.check import Report, check_partners
from scheduling.config import ConfigError, Practice, parse_practice
from scheduling.conflicts import ProblemKind, check_appointment
from scheduling.partners import rules_for, weekly_supply
from scheduling.slots import free_slots

MONDAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def practice(**partner: Any) -> Practice:
    return parse_practice(
        {
            "practice": {"name": "P", "timezone": "Europe/Warsaw"},
            "locations": [{"id": "centre", "name": "Centre"}],
            "services": [
                {"id": "consult", "name": "Consultation", "duration": 50, "buffer_after": 10, "start_every": 60}
            ],
            "specialists": [
                {
                    "id": "ana",
                    "name": "Ana",
                    "services": ["consult"],
                    "schedule": [
                        {"weekday": "mon", "start": "09:00", "end": "12:00", "location": "centre"},
                        {
                            "weekday": "tue",
                            "start": "09:00",
                            "end": "11:00",
                            "location": "centre",
                            "booking": ["partner:insurer"],
                        },
                        {
                            "weekday": "wed",
                            "start": "09:00",
                            "end": "10:00",
                            "location": "centre",
                            "booking": ["clients", "partner:insurer"],
                        },
                    ],
                }
            ],
            "partners": [
                {
                    "id": "insurer",
                    "name": "Insurer",
                    "label": "Insured",
                    "key_envs": ["BOOKINGBOT_TEST_RULES_KEY"],
                    "services": ["consult"],
                    **partner,
                }
            ],
        }
    )


def starts(p: Practice, day: date, rules: Any = None) -> list[str]:
    kwargs = {"rules": rules} if rules else {}
    slots = free_slots(
        p,
        service_id="consult",
        location_id="centre",
        specialist_ids=["ana"],
        first_day=day,
        last_day=day,
        busy={},
        now=NOW,
        **kwargs,
    )
    return [s.start.strftime("%a %H:%M") for s in slots]


def test_windows_are_offered_to_their_audience_only() -> None:
    p = practice()
    partner = rules_for(p.partner_by_id["insurer"])
    assert starts(p, MONDAY) == ["Mon 08:00", "Mon 09:00", "Mon 10:00"]  # UTC: 09:00-12:00 in Warsaw
    assert starts(p, MONDAY, partner) == []
    assert starts(p, date(2026, 12, 1)) == []  # partner-only Tuesday: invisible to Telegram clients
    assert starts(p, date(2026, 12, 1), partner) == ["Tue 08:00", "Tue 09:00"]
    assert starts(p, date(2026, 12, 2)) == starts(p, date(2026, 12, 2), partner) == ["Wed 08:00"]


def test_a_client_cannot_be_booked_into_a_partner_window() -> None:
    p = practice()
    tuesday_nine = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    kinds = [
        q.kind
        for q in check_appointment(
            p, specialist_id="ana", service_id="consult", location_id="centre", start=tuesday_nine, busy=[], now=NOW
        )
    ]
    assert kinds == [ProblemKind.OUTSIDE_ANY_SCHEDULE]
    assert (
        check_appointment(
            p,
            specialist_id="ana",
            service_id="consult",
            location_id="centre",
            start=tuesday_nine,
            busy=[],
            now=NOW,
            rules=rules_for(p.partner_by_id["insurer"]),
        )
        == []
    )


def test_the_partner_notice_replaces_the_specialists() -> None:
    p = practice(min_notice_hours=4)  # Ana's own notice is the default 12 hours
    partner = rules_for(p.partner_by_id["insurer"])
    wednesday_nine = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)

    def kinds(hours_before: int, **rules: Any) -> list[ProblemKind]:
        now = wednesday_nine.replace(hour=8 - hours_before)
        found = check_appointment(
            p,
            specialist_id="ana",
            service_id="consult",
            location_id="centre",
            start=wednesday_nine,
            busy=[],
            now=now,
            **rules,
        )
        return [q.kind for q in found]

    assert kinds(3) == kinds(5) == [ProblemKind.LEAD_TIME]
    assert kinds(3, rules=partner) == [ProblemKind.LEAD_TIME]
    assert kinds(5, rules=partner) == []


def test_configuration_names_unknown_partners_and_bad_audiences() -> None:
    p = practice()
    data = p.model_dump(mode="json")
    data["specialists"][0]["schedule"][0]["booking"] = ["partner:nobody"]
    with pytest.raises(ConfigError) as err:
        parse_practice(data)
    assert err.value.errors == ["specialists[0].schedule[0].booking: no partner with id 'nobody'"]
    data["specialists"][0]["schedule"][0]["booking"] = ["everyone"]
    with pytest.raises(ConfigError) as err:
        parse_practice(data)
    assert "is neither" in err.value.errors[0] and err.value.errors[0].startswith("specialists[0].schedule[0].booking")
    data = p.model_dump(mode="json")
    data["partners"][0]["webhook_url"] = "https://partner.example.org/hook"
    with pytest.raises(ConfigError) as err:
        parse_practice(data)
    assert err.value.errors == [
        "partners[0].webhook_secret_env: name the environment variable holding the signing secret"
    ]


def test_weekly_supply_counts_back_to_back_visits_in_partner_windows() -> None:
    p = practice()
    # Tuesday 2 one-hour visits, Wednesday 1: Monday's window is for Telegram clients only.
    assert weekly_supply(p, p.partner_by_id["insurer"], MONDAY) == 3


def test_check_warns_below_the_minimum_and_names_missing_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = practice(min_weekly_slots=4)
    monkeypatch.delenv("BOOKINGBOT_TEST_RULES_KEY", raising=False)
    report = Report()
    check_partners(report, p, MONDAY, weeks=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✘ partner insurer: no API key set; set BOOKINGBOT_TEST_RULES_KEY"
    assert out[1:] == [
        "  ! partner insurer: 3 visit(s) open to it in the week from 2026-11-30, below its minimum of 4; "
        "open more windows to partner:insurer",
        "  ! partner insurer: 3 visit(s) open to it in the week from 2026-12-07, below its minimum of 4; "
        "open more windows to partner:insurer",
    ]
    assert report.failed == 1  # the warnings do not fail the check
    monkeypatch.setenv("BOOKINGBOT_TEST_RULES_KEY", "k" * 40)
    check_partners(Report(), practice(min_weekly_slots=3), MONDAY, weeks=2)
    assert capsys.readouterr().out.splitlines() == ["✔ partner insurer: 1 API key(s)"]
